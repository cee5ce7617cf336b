"""The label comparison of ``bench/label_check.py`` and the site-resolved features of
``bench/accuracy.py`` (loaded from ``bench/`` as the scripts run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_compare_counts_matches_within_the_tolerance() -> None:
    lc = _load("label_check")
    board = {"a": 1.0, "b": 200.0, "c": 0.5, "d": 3.0}
    ours = {"a": 1.00005, "b": 200.01, "c": 0.6, "e": 7.0}  # b: relative 5e-5, c: differs
    r = lc.compare(ours, board)
    assert (r["both"], r["match"], r["differ"], r["source_only"]) == (3, 2, 1, 1)
    assert r["examples"] == [["c", 0.6, 0.5]]
    assert r["max_abs_difference"] == pytest.approx(0.1)


def test_label_check_on_the_bundled_data(samples: Path) -> None:
    rows = {(r["source"], r["property"]): r for r in _load("label_check").check(samples)["rows"]}
    sample = rows[("alignn_sample50", "optb88vdw_bandgap")]
    assert (sample["both"], sample["match"]) == (50, 50)
    assert rows[("store_full", "optb88vdw_bandgap")]["both"] == 940


def test_site_features_put_each_element_on_its_site() -> None:
    acc = _load("accuracy")
    onehot, cgcnn = acc.site_features(np.array([8, 22]), n_sites=3)  # O on site 0, Ti on 1
    grid = onehot.reshape(3, 103)
    assert grid[0, 7] == 1 and grid[1, 21] == 1 and grid.sum() == 2  # site 2 padded with zeros
    swapped, _ = acc.site_features(np.array([22, 8]), n_sites=3)
    assert not np.array_equal(onehot, swapped)  # unlike element fractions, the order counts
    assert cgcnn.shape == (3 * 92,) and not cgcnn[184:].any()
