"""Numbers and tables as text: what every report, summary and console table uses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fmt(v: Any, digits: int = 4, missing: str = "—") -> str:
    """A number with ``digits`` significant digits; ``missing`` for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], missing: str = "—") -> str:
    """A Markdown table (also readable in a terminal); cells pass through :func:`fmt`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c, missing=missing) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plain(text: str) -> str:
    """A docstring paragraph as terminal text (``--help``): no reStructuredText markup."""
    return " ".join(text.replace("``", "").split())
