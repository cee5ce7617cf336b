"""Atoms.describe()'s spglib messages are counted and logged once, not printed raw."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fusion_tuner.data import features
from fusion_tuner.data.tables import load_table


def test_spglib_lines_are_counted_not_printed(
    samples: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = samples / "perov5_castelli" / "perov5_val.csv.zip"
    crystals, _ = load_table(path, "heat_ref", "cif", "material_id", 200)
    # 6927: spglib's symmetry search fails 18 times (it printed "spglib: ... failed." lines)
    odd = [c for c in crystals if c.id in ("6927", crystals[0].id)]
    capfd.readouterr()
    with caplog.at_level(logging.INFO, logger="fusion_tuner"):
        texts, failed, messages = features.describe_all(odd, "desc_2")
    out, err = capfd.readouterr()
    assert "spglib" not in out + err
    assert set(texts) == {c.id for c in odd} and failed == []
    assert messages == 18
    assert "spglib reported 18 failed symmetry searches for 1 of 2 crystals" in caplog.text
