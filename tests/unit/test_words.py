"""Counts in words."""

from __future__ import annotations

from fusion_tuner.words import plural


def test_one_is_singular_and_every_other_count_plural() -> None:
    assert plural(1, "sweep") == "1 sweep"
    assert [plural(n, "run") for n in (0, 2)] == ["0 runs", "2 runs"]
    assert plural(3, "crystal", "crystals") == "3 crystals"
