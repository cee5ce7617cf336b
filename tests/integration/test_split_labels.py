"""``dataset.split_labels`` on the real leaderboard split and the mini JARVIS store."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from fusion_tuner import build_datamodule
from fusion_tuner.errors import DataError
from tests.conftest import compose

pytestmark = pytest.mark.integration

SPLIT = "jarvis_leaderboard_dft3d/SinglePropertyPrediction_dft_3d_optb88vdw_bandgap.json.zip"


def leaderboard(samples: Path) -> dict:
    with zipfile.ZipFile(samples / SPLIT) as zf:
        return json.loads(zf.read(zf.namelist()[0]))


def data(samples: Path, split_file: Path, *extra: str) -> tuple[str, ...]:
    return (
        "dataset=jarvis",
        f"dataset.jarvis_dir={samples / 'jarvis_dft3d_mini' / 'store_sample50'}",
        "dataset.name=dft_3d_2021",
        "dataset.target=optb88vdw_bandgap",
        f"dataset.split_file={split_file}",
        "text=none",
        *extra,
    )


def counts(report: dict) -> dict[str, tuple[int, int, int]]:
    labels = report["split_file"]["labels"]
    return {
        k: (labels[k]["match"], labels[k]["differ"], labels[k]["missing"])
        for k in labels
        if k in ("train", "val", "test")
    }


def test_the_leaderboard_labels_match_the_mini_store(samples: Path, tmp_path: Path) -> None:
    dm = build_datamodule(compose(*data(samples, samples / SPLIT), cache=tmp_path))
    board = leaderboard(samples)
    got = counts(dm.report)
    assert sum(m for m, _, _ in got.values()) == 50  # all 50 labelled records, exactly
    assert all(d == 0 for _, d, _ in got.values())
    assert {k: m + miss for k, (m, _, miss) in got.items()} == {k: len(board[k]) for k in got}
    assert dm.report["split_file"]["labels"]["policy"] == "check"


def test_differing_labels_are_counted_and_used_only_when_asked(
    samples: Path, tmp_path: Path, caplog
) -> None:
    """A split file whose labels differ: check warns with counts, use trains on the file's
    labels (without touching the cache), ignore does not look."""
    board = leaderboard(samples)
    dm = build_datamodule(compose(*data(samples, samples / SPLIT), cache=tmp_path))
    ours = {cid: float(dm.graphs.targets[row]) for cid, row in dm.graphs.row_of.items()}
    train_ids = [i for i in board["train"] if i in ours][:4]
    test_id = next(i for i in board["test"] if i in ours)
    changed = {train_ids[0]: 0.5, train_ids[1]: 1.0, test_id: 2.0}  # added to the label
    changed[train_ids[2]] = 5e-5  # within the tolerance (absolute 1e-4 below 1 eV)
    for split in board:
        for cid, delta in changed.items():
            if cid in board[split]:
                board[split][cid] = ours[cid] + delta
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(board))

    checked = build_datamodule(compose(*data(samples, path), cache=tmp_path))
    assert checked.report["cache"]["graphs"][1] is True
    got = counts(checked.report)
    assert (got["train"][1], got["val"][1], got["test"][1]) == (2, 0, 1)
    labels = checked.report["split_file"]["labels"]
    assert labels["train"]["max_abs_diff"] == pytest.approx(1.0)
    assert sorted(e[0] for e in labels["train"]["examples"]) == sorted(train_ids[:2])
    assert "differ from dataset.target='optb88vdw_bandgap' for 3 crystals" in caplog.text
    assert float(checked.graphs.targets[checked.graphs.row_of[test_id]]) == ours[test_id]

    used = build_datamodule(
        compose(*data(samples, path, "dataset.split_labels=use"), cache=tmp_path)
    )
    assert used.report["split_file"]["labels"]["replaced"] == 3
    for cid, delta in changed.items():
        assert float(used.graphs.targets[used.graphs.row_of[cid]]) == pytest.approx(
            ours[cid] + delta
        )
    test = used.datasets["test"]
    test_targets = dict(zip(test.ids, test.targets.tolist(), strict=True))
    assert test_targets[test_id] == pytest.approx(ours[test_id] + 2.0)
    # the cache still holds the data set's own targets
    again = build_datamodule(compose(*data(samples, path), cache=tmp_path))
    assert torch.equal(again.graphs.targets, checked.graphs.targets)

    # dataset.split_label_tolerance widens the match: 0.5 eV (relative 0.6 below 1 eV) matches
    wide = build_datamodule(
        compose(*data(samples, path, "dataset.split_label_tolerance=0.6"), cache=tmp_path)
    )
    assert counts(wide.report)["train"][1] == 1  # only the 1.0 eV difference is left
    assert wide.report["split_file"]["labels"]["tolerance"] == 0.6

    ignored = build_datamodule(
        compose(*data(samples, path, "dataset.split_labels=ignore"), cache=tmp_path)
    )
    assert ignored.report["split_file"]["labels"] == {"policy": "ignore"}


def test_a_split_file_without_labels(samples: Path, tmp_path: Path) -> None:
    board = leaderboard(samples)
    path = tmp_path / "ids_train_val_test.json"
    path.write_text(json.dumps({k: list(v) for k, v in board.items()}))
    dm = build_datamodule(compose(*data(samples, path), cache=tmp_path / "a"))
    assert dm.report["split_file"]["labels"] == {
        "policy": "check",
        "labels": "none in the split file",
    }
    assert sum(len(v) for v in dm.splits.values()) == 50
    with pytest.raises(DataError, match="carries no numeric labels"):
        build_datamodule(
            compose(*data(samples, path, "dataset.split_labels=use"), cache=tmp_path / "b")
        )
    assert not list((tmp_path / "b").glob("features/graphs-*.pt"))  # refused before featurising
