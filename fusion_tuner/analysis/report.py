"""Outputs shared by the analysis commands: a JSON of the numbers, a Markdown report, a table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fusion_tuner.data.cache import atomic_write_text


def fmt(v: Any, digits: int = 4, missing: str = "—") -> str:
    """A number with ``digits`` significant digits; ``missing`` for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (also readable in a terminal)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out: Path, name: str, numbers: dict[str, Any], markdown: str) -> None:
    """``<out>/<name>.json`` and ``<out>/<name>.md``, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        json.dumps(numbers, indent=1, default=_json_default) + "\n", out / f"{name}.json"
    )
    atomic_write_text(markdown + "\n", out / f"{name}.md")


def _json_default(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def savefig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
