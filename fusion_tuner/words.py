"""Counts in words: "1 sweep", "2 sweeps"."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and ``noun``, in the plural (``many``, else ``noun + "s"``) unless ``n`` is 1."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
