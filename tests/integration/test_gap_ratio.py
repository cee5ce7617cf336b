"""One gap ratio: validation MAE over the eval-mode MAE of a fixed training subset, the same in
history.csv, the curves (and ``analyze curves``), W&B and metrics.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fusion_tuner.rundir import Run
from fusion_tuner.training import epoch as epoch_module
from fusion_tuner.training.plots import history_columns
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


def test_the_subset_is_fixed_and_evenly_spread() -> None:
    ids = [f"c{i}" for i in range(10)]
    assert epoch_module.train_eval_ids(ids, 20) == ids
    assert epoch_module.train_eval_ids(ids, 4) == ["c0", "c2", "c5", "c7"]
    assert epoch_module.TRAIN_EVAL_CRYSTALS == 2000


def test_history_curves_and_metrics_give_the_same_gap_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fusion_tuner.training import trainer

    # a subset smaller than the training split (48 crystals), as on a large split
    monkeypatch.setattr(trainer, "train_eval_ids", lambda ids: epoch_module.train_eval_ids(ids, 20))
    run = train_run(tmp_path / "run", "scheduler.epochs=3")
    m = json.loads((run / "metrics.json").read_text())
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert "train_eval_mae" in rows[0] and len(rows) == 3
    best = next(r for r in rows if int(r["epoch"]) == m["best_epoch"])
    # history.csv's best row and metrics.json: the same ratio, from the same two numbers
    assert float(best["gap_ratio"]) == pytest.approx(m["gap_ratio"], rel=1e-12)
    assert float(best["val_mae"]) / float(best["train_eval_mae"]) == pytest.approx(m["gap_ratio"])
    assert m["gap_train_mae"] == pytest.approx(float(best["train_eval_mae"]))
    assert m["gap_train_crystals"] == 20 and m["train"]["n"] == 48
    # the validation MAE of the best epoch is the best model's
    assert float(best["val_mae"]) == pytest.approx(m["val"]["mae"], rel=1e-5)
    # every epoch's ratio uses the eval-mode MAE, not the running train-mode one
    for r in rows:
        assert float(r["gap_ratio"]) == pytest.approx(
            float(r["val_mae"]) / float(r["train_eval_mae"])
        )
    # the curves (and analyze curves) read the same column
    col = history_columns(Run(run).history)
    i = list(col["epoch"]).index(m["best_epoch"])
    assert col["gap"][i] == pytest.approx(m["gap_ratio"])
    assert col["train_mae"][i] == pytest.approx(m["gap_train_mae"])
    from fusion_tuner.analysis.curves import run_curves

    curves = run_curves([str(run)], tmp_path / "curves", ["run"])
    assert curves["runs"]["run"]["gap_ratio_at_best"] == pytest.approx(m["gap_ratio"])


def test_old_histories_without_the_column_still_plot() -> None:
    rows = [
        {"epoch": "1", "train_loss": "1", "val_loss": "1", "train_mae": "2", "val_mae": "3"},
    ]
    col = history_columns(rows)
    assert col["gap"][0] == pytest.approx(1.5) and col["train_running_mae"][0] == 2.0
