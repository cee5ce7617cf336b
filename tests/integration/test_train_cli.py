"""`python -m fusion_tuner` end to end on tiny demo data: files, metrics, failure, completion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import read_csv, run_cli

pytestmark = pytest.mark.integration

METRIC_KEYS = {
    "status",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "early_stopping_can_fire",
    "train",
    "val",
    "test",
    "gap_ratio",
    "wall_time_s",
    "train_crystals_per_s",
    "seed",
    "config_hash",
    "budget",
}


@pytest.fixture(scope="session")
def finished_run(trained_run: Path) -> Path:
    """The session's TINY run (trained in process, as the CLI would)."""
    return trained_run


@pytest.mark.e2e
def test_the_cli_run_writes_every_file(tmp_path: Path) -> None:
    finished_run = tmp_path / "baseline"
    run_cli(finished_run)
    names = {p.name for p in finished_run.iterdir()}
    expected = {
        ".hydra",
        "split.json",
        "train.log",
        "history.csv",
        "curves.png",
        "best_model.pt",
        "predictions_train.csv",
        "predictions_val.csv",
        "predictions_test.csv",
        "metrics.json",
        "data_report.json",
        "tokenizer",
    }
    assert expected <= names
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 3
    assert metrics["stop_reason"] == "max_epochs"
    assert metrics["early_stopping_can_fire"] is False  # baseline patience 150 >= 3 epochs
    for split in ("train", "val", "test"):
        assert set(metrics[split]) == {"mae", "rmse", "r2", "n", "mean_predictor_mae", "skill"}
    assert metrics["gap_ratio"] == pytest.approx(metrics["val"]["mae"] / metrics["train"]["mae"])


def test_skill_against_the_training_mean_predictor(finished_run: Path) -> None:
    metrics = json.loads((finished_run / "metrics.json").read_text())
    train = [float(r["target"]) for r in read_csv(finished_run / "predictions_train.csv")]
    mean = sum(train) / len(train)
    assert metrics["train_target_mean"] == pytest.approx(mean)
    for split in ("val", "test"):
        rows = read_csv(finished_run / f"predictions_{split}.csv")
        base = sum(abs(float(r["target"]) - mean) for r in rows) / len(rows)
        assert metrics[split]["mean_predictor_mae"] == pytest.approx(base, rel=1e-4)
        assert metrics[split]["skill"] == pytest.approx(1 - metrics[split]["mae"] / base, rel=1e-3)
    assert metrics["learned_nothing"] is (metrics["val"]["skill"] < 0.1)
    log = (finished_run / "train.log").read_text()
    done = next(line for line in log.splitlines() if "done:" in line)
    assert f"skill val {metrics['val']['skill']:.2f} / test {metrics['test']['skill']:.2f}" in done
    assert ("LEARNED NOTHING" in done) is metrics["learned_nothing"]


def test_history_and_best_epoch_are_consistent(finished_run: Path) -> None:
    history = read_csv(finished_run / "history.csv")
    assert list(history[0])[:9] == [
        "epoch",
        "train_loss",
        "train_mae",
        "train_eval_mae",
        "val_loss",
        "val_mae",
        "lr",
        "contrastive_loss",
        "epoch_seconds",
    ]
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    metrics = json.loads((finished_run / "metrics.json").read_text())
    val = [float(r["val_mae"]) for r in history]
    assert metrics["best_epoch"] == 1 + val.index(min(val))
    # the best checkpoint's val MAE is what metrics.json reports for val
    assert metrics["val"]["mae"] == pytest.approx(min(val), rel=1e-5)


def test_predictions_cover_exactly_the_recorded_split(finished_run: Path) -> None:
    split = json.loads((finished_run / "split.json").read_text())
    for name in ("train", "val", "test"):
        rows = read_csv(finished_run / f"predictions_{name}.csv")
        assert list(rows[0]) == ["id", "target", "prediction"]
        assert sorted(r["id"] for r in rows) == sorted(split[name])
    assert not set(split["train"]) & set(split["test"])


@pytest.mark.e2e
def test_rerunning_a_completed_run_only_reports_it(finished_run: Path) -> None:
    before = (finished_run / "metrics.json").read_text()
    mtime = (finished_run / "best_model.pt").stat().st_mtime_ns
    proc = run_cli(finished_run)
    assert "already complete" in proc.stdout + proc.stderr
    assert (finished_run / "metrics.json").read_text() == before
    assert (finished_run / "best_model.pt").stat().st_mtime_ns == mtime


@pytest.mark.e2e
def test_a_failing_run_records_failed_and_exits_nonzero(tmp_path: Path) -> None:
    run_dir = tmp_path / "bad"
    empty = tmp_path / "empty"  # exists (a missing folder fails validation, before the run dir)
    empty.mkdir()
    proc = run_cli(run_dir, "dataset=folder", f"dataset.root={empty}", check=False)
    assert proc.returncode != 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert "id_prop.csv not found" in metrics["error"]
    log = (run_dir / "train.log").read_text()
    assert "Traceback" in log and "DataError" in log


def test_config_error_fails_before_any_work(tmp_path: Path) -> None:
    run_dir = tmp_path / "cfg"
    proc = run_cli(run_dir, 'fusion.middle_fusion_layers="5"', check=False)
    assert proc.returncode != 0
    assert "fusion.middle_fusion_layers" in proc.stderr
    assert not (run_dir / "metrics.json").exists()


def test_load_run_rebuilds_the_best_model(finished_run: Path) -> None:
    import numpy as np

    from fusion_tuner import build_datamodule, load_run

    loaded = load_run(finished_run)
    assert loaded.metrics["status"] == "completed"
    assert loaded.config.arch.hidden_features == 32
    dm = build_datamodule(loaded.config)
    assert dm.splits == loaded.split
    rows = {r["id"]: float(r["prediction"]) for r in read_csv(finished_run / "predictions_val.csv")}
    from fusion_tuner.training.loop import evaluate

    ev = evaluate(
        loaded.model,
        dm.loader("val", shuffle=False),
        loaded.config,
        __import__("torch").device("cpu"),
    )
    np.testing.assert_allclose(ev.prediction, [rows[i] for i in ev.ids], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("order", ["flag_first", "flag_last"])
def test_cfg_job_prints_the_composed_config_with_overrides(order: str) -> None:
    args = ["--cfg", "job"]
    over = ["regularization.graph_dropout=0.3", "+phase=1"]
    argv = [*args, *over] if order == "flag_first" else [*over, *args]
    proc = subprocess.run(
        [sys.executable, "-m", "fusion_tuner", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "graph_dropout: 0.3" in proc.stdout
