"""A split file's labels against the data set's targets (``dataset.split_labels``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from fusion_tuner.data import records, splits
from fusion_tuner.errors import ConfigError
from tests.conftest import compose


def test_labels_match_absolute_below_one_relative_above() -> None:
    assert splits.labels_match(0.30005, 0.3, 1e-4)
    assert not splits.labels_match(0.3002, 0.3, 1e-4)
    assert splits.labels_match(1000.05, 1000.0, 1e-4)  # 5e-5 relative
    assert not splits.labels_match(1000.2, 1000.0, 1e-4)
    assert splits.labels_match(-2.0, -2.0, 0.0)


def test_compare_labels_counts_matching_differing_and_missing_ids() -> None:
    ids = ["POSCAR-JVASP-1.vasp", "JVASP-2", "JVASP-3", "JVASP-4"]
    targets = [1.0, 2.0, 3.0, 4.0]
    labels = {
        "train": {"JVASP-1": 1.0, "JVASP-2": 2.5, "JVASP-99": 7.0},
        "val": {"JVASP-3": 3.00001},
        "test": {"JVASP-4": 0.0},
    }
    found, report = splits.compare_labels(ids, targets, labels, 1e-4)
    assert found == {"POSCAR-JVASP-1.vasp": 1.0, "JVASP-2": 2.5, "JVASP-3": 3.00001, "JVASP-4": 0.0}
    counts = {
        k: (report[k]["match"], report[k]["differ"], report[k]["missing"])
        for k in ["train", "val", "test"]
    }
    assert counts == {"train": (1, 1, 1), "val": (1, 0, 0), "test": (0, 1, 0)}
    assert report["train"]["examples"] == [["JVASP-2", 2.0, 2.5]]
    assert report["test"]["max_abs_diff"] == 4.0
    assert report["tolerance"] == 1e-4


def test_read_split_labels_of_each_form(tmp_path: Path) -> None:
    leaderboard = {"train": {"a": 1.5, "b": 2}, "val": {"c": -0.5}, "test": {"d": 0.0}}
    zipped = tmp_path / "lb.json.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("lb.json", json.dumps(leaderboard))
    assert records.read_split_labels(zipped) == {
        "train": {"a": 1.5, "b": 2.0},
        "val": {"c": -0.5},
        "test": {"d": 0.0},
    }
    ids_only = tmp_path / "ids_train_val_test.json"  # ALIGNN's form: id lists, no labels
    ids_only.write_text(json.dumps({"train": ["a", "b"], "val": ["c"], "test": ["d"]}))
    assert records.read_split_labels(ids_only) is None
    structures = tmp_path / "atomgen.json"  # the leaderboard's AtomGen files hold POSCARs
    structures.write_text(json.dumps({"train": {"a": "POSCAR..."}, "val": {}, "test": {}}))
    assert records.read_split_labels(structures) is None


def test_split_labels_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.split_labels='trust' is not one of"):
        compose("dataset.split_labels=trust")
    with pytest.raises(ConfigError, match=r"split_labels=use needs dataset\.split_file"):
        compose("dataset.split_labels=use")
    assert compose().dataset.split_labels == "check"
