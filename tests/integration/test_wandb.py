"""logger=wandb in offline mode: metrics, config and grouping recorded; runs never leak."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fusion_tuner import compose_config, train
from tests.helpers import wandb_offline_records
from tests.helpers.cli import TINY

pytestmark = pytest.mark.integration


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def tiny(*extra: str):
    return compose_config([*TINY, "scheduler.epochs=2", "logger=wandb", "logger.mode=auto", *extra])


def test_offline_run_records_metrics_config_and_group(tmp_path: Path, offline_wandb) -> None:
    metrics = train(
        tiny("experiment_name=e08_weaker_cross_attention", "logger.group=phase3"), tmp_path / "a"
    )
    rec = wandb_offline_records(tmp_path / "a")
    assert len(rec["files"]) == 1  # auto mode without an API key is offline
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert all({"train/mae", "val/mae", "lr", "gap_ratio"} <= set(h) for h in rec["history"])
    assert rec["summary"]["test/mae"] == pytest.approx(metrics["test"]["mae"])
    # one gap ratio: W&B's per epoch is history.csv's, its summary is metrics.json's
    rows = list(csv.DictReader((tmp_path / "a" / "history.csv").open()))
    assert [h["gap_ratio"] for h in rec["history"]] == pytest.approx(
        [float(r["gap_ratio"]) for r in rows]
    )
    assert [h["train/mae_eval"] for h in rec["history"]] == pytest.approx(
        [float(r["train_eval_mae"]) for r in rows]
    )
    assert rec["summary"]["gap_ratio"] == pytest.approx(metrics["gap_ratio"])
    run = rec["run"][0]
    assert (run.run_group, run.job_type) == ("phase3", "e08_weaker_cross_attention")
    config_keys = {i.key for i in run.config.update}
    assert {"regularization", "fusion", "scheduler", "attention", "random_seed"} <= config_keys
    assert rec["exit"] == [0]


def test_runs_in_one_process_do_not_log_into_each_other(tmp_path: Path, offline_wandb) -> None:
    train(tiny(), tmp_path / "one")
    with pytest.raises(Exception, match="id_prop"):
        train(tiny("dataset=folder", f"dataset.root={tmp_path}"), tmp_path / "two")
    train(tiny("random_seed=3"), tmp_path / "three")
    one, two, three = (wandb_offline_records(tmp_path / n) for n in ("one", "two", "three"))
    assert len(one["history"]) == 2 and len(three["history"]) == 2
    assert two["history"] == [] and two["exit"] == [1]  # the failed run was finished, as failed
    assert one["run"][0].run_id != three["run"][0].run_id
