"""The sweep summary: decisions, seeds, failed and missing runs, verdict, files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from fusion_tuner.summary import main as summary_main
from fusion_tuner.sweeps.report import write_summary
from fusion_tuner.sweeps.summary import DOWN, NONE, SAME, UP, decide


def fake_run(
    sweep: Path,
    exp: str,
    seed: int,
    val: float | None,
    status: str = "completed",
    config: dict | None = None,
    error: str | None = None,
    gap: float = 1.5,
    can_fire: bool = True,
) -> Path:
    d = sweep / f"{exp}-seed{seed}"
    (d / ".hydra").mkdir(parents=True)
    cfg = {"experiment_name": exp, "random_seed": seed, "regularization": {"graph_dropout": 0.15}}
    cfg.update(config or {})
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"experiment={exp}", f"random_seed={seed}"])
    )
    metrics = {"status": status, "experiment": exp, "seed": seed}
    if status == "completed":
        metrics |= {
            "best_epoch": 5,
            "epochs_run": 9,
            "stop_reason": "early_stopping",
            "early_stopping_can_fire": can_fire,
            "gap_ratio": gap,
            "train": {"mae": val / gap, "rmse": 1, "r2": 0.9, "n": 80},
            "val": {"mae": val, "rmse": 1, "r2": 0.8, "n": 10},
            "test": {"mae": val * 1.1, "rmse": 1, "r2": 0.7, "n": 10},
        }
    if error:
        metrics["error"] = error
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_decide_rule_single_seed_uses_the_threshold() -> None:
    assert decide([0.95], [1.0], 0.02)[0] == DOWN
    assert decide([0.99], [1.0], 0.02)[0] == SAME
    assert decide([1.05], [1.0], 0.02)[0] == UP
    assert decide([], [1.0], 0.02)[0] == NONE


def test_decide_rule_with_seeds_needs_more_than_the_noise() -> None:
    # 5% lower on average, but the seeds scatter by +-10%: not a real change
    noisy = decide([0.85, 1.05, 0.95], [0.9, 1.1, 1.0], 0.02)
    assert noisy[0] == SAME and noisy[2] > 0.02
    tight = decide([0.95, 0.951, 0.949], [1.0, 1.001, 0.999], 0.02)
    assert tight[0] == DOWN and math.isclose(tight[1], -0.05, abs_tol=1e-9)


def test_summary_lists_every_run_with_decisions_and_flags(tmp_path: Path) -> None:
    fake_run(tmp_path, "baseline", 1, 1.0)
    fake_run(
        tmp_path,
        "e01_conservative_regularization",
        1,
        0.9,
        config={"regularization": {"graph_dropout": 0.2}},
    )
    fake_run(
        tmp_path,
        "e02_aggressive_regularization",
        1,
        1.2,
        gap=2.5,
        can_fire=False,
        config={"regularization": {"graph_dropout": 0.25}},
    )
    fake_run(
        tmp_path,
        "e06_lower_lr",
        1,
        None,
        status="failed",
        error="Traceback...\nDataError: id_prop.csv not found",
    )
    (tmp_path / "sweep_plan.json").write_text(
        json.dumps(
            {
                "jobs": [
                    ["experiment=baseline", "random_seed=1"],
                    ["experiment=e01_conservative_regularization", "random_seed=1"],
                    ["experiment=e02_aggressive_regularization", "random_seed=1"],
                    ["experiment=e06_lower_lr", "random_seed=1"],
                    ["experiment=e07_conservative_lr", "random_seed=1"],
                ]
            }
        )
    )
    s = write_summary(tmp_path, 0.02)
    rows = {r["experiment"]: r for r in s.rows}
    assert set(rows) == {
        "baseline",
        "e01_conservative_regularization",
        "e02_aggressive_regularization",
        "e06_lower_lr",
        "e07_conservative_lr",
    }
    assert rows["e01_conservative_regularization"]["decision"] == DOWN
    assert rows["e01_conservative_regularization"]["delta_val_mae_pct"] == pytest.approx(-10.0)
    assert (
        rows["e01_conservative_regularization"]["overrides"] == "regularization.graph_dropout=0.2"
    )
    assert rows["e02_aggressive_regularization"]["decision"] == UP
    assert "overfitting (gap > 2x)" in rows["e02_aggressive_regularization"]["flags"]
    assert "early stopping could not fire" in rows["e02_aggressive_regularization"]["flags"]
    assert rows["e06_lower_lr"]["status"] == "failed"
    assert rows["e06_lower_lr"]["error"] == "DataError: id_prop.csv not found"
    assert rows["e07_conservative_lr"]["status"] == "missing"
    assert "e01_conservative_regularization lowered validation MAE by 10.0%" in s.verdict
    assert "2 run(s) failed or did not finish" in s.verdict
    with (tmp_path / "summary.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 5
    md = (tmp_path / "summary.md").read_text()
    assert "## Runs that failed or did not finish" in md and "e07_conservative_lr" in md
    assert "Rule: a change counts when" in md and "0.02" in md
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_verdicts_for_unchanged_and_worse(tmp_path: Path) -> None:
    same, worse = tmp_path / "same", tmp_path / "worse"
    for d, val in ((same, 1.005), (worse, 1.3)):
        fake_run(d, "baseline", 1, 1.0)
        fake_run(d, "e08_weaker_cross_attention", 1, val)
    assert "try the phase 4 settings" in write_summary(same).verdict
    assert "back off to more conservative settings" in write_summary(worse).verdict


def test_seeds_are_aggregated_per_experiment(tmp_path: Path) -> None:
    for seed, (b, e) in enumerate([(1.0, 0.90), (1.02, 0.91), (0.98, 0.92)], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        fake_run(tmp_path, "e03_two_layer_fusion", seed, e)
    s = write_summary(tmp_path)
    decision, delta, _, n = s.decisions["e03_two_layer_fusion"]
    assert (decision, n) == (DOWN, 3) and delta == pytest.approx(-0.09)
    assert len(s.rows) == 6


def test_summary_cli(tmp_path: Path, capsys) -> None:
    fake_run(tmp_path, "baseline", 1, 1.0)
    assert summary_main([str(tmp_path)]) == 0
    assert "Sweep summary" in capsys.readouterr().out
    assert summary_main([str(tmp_path / "nope")]) == 2


def test_colliding_run_directories_are_refused_before_any_run() -> None:
    from fusion_tuner.sweeps.plan import check_subdir

    default = "${experiment_name}-seed${random_seed}"
    grid = [
        ["+phase=1", "experiment=baseline", "random_seed=1"],
        ["+phase=1", "experiment=e01", "random_seed=2"],
    ]
    check_subdir(grid, default)  # experiment and seed are named
    swept = [["regularization.graph_dropout=0.1"], ["regularization.graph_dropout=0.2"]]
    with pytest.raises(
        ValueError, match=r"varies regularization\.graph_dropout.*graph_dropout\$\{regularization"
    ):
        check_subdir(swept, default)
    check_subdir(swept, default + "-gd${regularization.graph_dropout}")
    check_subdir(swept, "run${hydra.job.num}")
