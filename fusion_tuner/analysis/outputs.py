"""What every analysis command writes: a JSON of its numbers and a Markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusion_tuner.io import atomic_write_text, write_json
from fusion_tuner.markdown import safe_markdown


def write_outputs(out: Path, name: str, numbers: dict[str, Any], markdown: str) -> None:
    """``<out>/<name>.json`` and ``<out>/<name>.md``, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", numbers)
    atomic_write_text(safe_markdown(markdown) + "\n", out / f"{name}.md")
