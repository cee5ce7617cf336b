"""The plan report's figures of whole arms: learning curves over seeds (median, range, the seeds
behind each epoch) and test parity, as numbers first and drawn from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.figures import arm_curve, arm_parity, plot_arm_curves, plot_parity
from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import (
    fake_run,
    fixed_design,
    patch_metrics,
    plan_sweeps,
    with_predictions,
)


def history(run_dir: Path, val: list[float], train_eval: list[float]) -> Run:
    rows = ["epoch,train_loss,train_mae,train_eval_mae,val_loss,val_mae"]
    rows += [
        f"{e},0.5,{t * 1.3},{t},0.4,{v}"
        for e, (v, t) in enumerate(zip(val, train_eval, strict=True), start=1)
    ]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")
    return Run(run_dir)


def test_arm_curve_is_the_median_and_range_over_the_seeds_that_ran_each_epoch(
    tmp_path: Path,
) -> None:
    runs = [
        history(fake_run(tmp_path, "e06", 1, 0.7), [1.0, 0.8, 0.7, 0.6], [0.9, 0.7, 0.6, 0.5]),
        history(fake_run(tmp_path, "e06", 2, 0.9), [1.2, 0.9, 0.9, 0.8], [1.0, 0.8, 0.7, 0.6]),
        # stopped after 2 epochs: counts in epochs 1 and 2 only
        history(fake_run(tmp_path, "e06", 3, 1.5), [2.0, 1.5], [1.9, 1.4]),
    ]
    runs.append(Run(fake_run(tmp_path, "e06", 4, 0.8)))  # no history.csv: not in the curves
    for seed, ref in ((1, 1.3), (2, 1.1), (3, 1.2), (4, 9.0)):
        patch_metrics(tmp_path / f"e06-seed{seed}", val={"mean_predictor_mae": ref})
    runs = [Run(r.path) for r in runs]  # metrics.json re-read
    curve = arm_curve("e06", runs)
    assert curve is not None
    assert curve.runs == ["e06-seed1", "e06-seed2", "e06-seed3"]
    assert curve.epoch == [1, 2, 3, 4]
    assert curve.seeds_at_epoch == [3, 3, 2, 2]
    assert curve.val_median == pytest.approx([1.2, 0.9, 0.8, 0.7])
    assert curve.val_low == pytest.approx([1.0, 0.8, 0.7, 0.6])
    assert curve.val_high == pytest.approx([2.0, 1.5, 0.9, 0.8])
    # the eval-mode training MAE, not the running train-mode one (1.3 x in these rows)
    assert curve.train_median == pytest.approx([1.0, 0.8, 0.65, 0.55])
    assert curve.best_epochs == [5, 5, 5]  # fake_run's metrics.json
    assert curve.last_epochs == [4, 4, 2]
    assert curve.val_mean_predictor == pytest.approx(1.2)  # median of the curves' runs only
    assert arm_curve("e06", runs[3:]) is None
    plot_arm_curves(curve, [curve], tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_arm_parity_averages_each_seeds_test_mae_and_r2(tmp_path: Path) -> None:
    runs = [
        Run(with_predictions(fake_run(tmp_path, "baseline", 1, 1.0), 0.1)),
        Run(with_predictions(fake_run(tmp_path, "baseline", 2, 1.0), -0.3)),
        Run(fake_run(tmp_path, "baseline", 3, 1.0)),  # no predictions_test.csv
    ]
    patch_metrics(runs[0].path, test={"mean_predictor_mae": 0.6})
    patch_metrics(runs[1].path, test={"mean_predictor_mae": 0.8})
    runs = [Run(r.path) for r in runs]
    parity = arm_parity("baseline", runs)
    assert parity is not None
    assert parity.mean_predictor_mae == pytest.approx(0.7)
    assert parity.runs == ["baseline-seed1", "baseline-seed2"] and parity.crystals == 4
    assert parity.mae == pytest.approx((0.1 + 0.3) / 2)
    # targets 0.5, 1, 1.5, 2: sum of squares about the mean 1.25; a constant error e gives
    # R² = 1 - 4 e² / 1.25
    assert parity.r2 == pytest.approx(((1 - 4 * 0.01 / 1.25) + (1 - 4 * 0.09 / 1.25)) / 2)
    assert parity.target[1] == [0.5, 1.0, 1.5, 2.0]
    assert parity.prediction[1] == pytest.approx([0.2, 0.7, 1.2, 1.7])
    assert arm_parity("baseline", runs[2:]) is None
    plot_parity([parity, parity], tmp_path / "p.png", "eV")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_draws_every_arm_of_every_sweep_and_the_path_over_all_seeds(
    tmp_path: Path,
) -> None:
    root = tmp_path / "multirun"
    plan_sweeps(root)
    numbers = build_report([root], cka=False)
    out = Path(numbers["out"])
    for i, arms in ((1, {"baseline", "e06_lower_lr"}), (2, {"baseline", "e03_two_layer_fusion"})):
        assert set(numbers["sweeps"][i - 1]["curves"]) == arms
        assert (out / f"sweep{i}_curves.png").is_file()
    e06 = numbers["sweeps"][0]["curves"]["e06_lower_lr"]
    assert e06["seeds_at_epoch"] == [3] * 5 and e06["epoch"] == [1, 2, 3, 4, 5]
    # the path: the original baseline (phase 1) against the best configuration (phase 2's
    # baseline: e03 was not a winner), every seed of each, in the curves and the parity plot
    assert [c["label"] for c in numbers["path_curves"]] == [
        "original baseline",
        "best: baseline of phase2/2026-01-02_00-00-00",
    ]
    parity = numbers["path_parity"]
    assert [len(p["runs"]) for p in parity] == [3, 3]
    assert parity[0]["mae"] == pytest.approx((1.0 + 1.02 + 0.98) / 3)
    assert parity[1]["mae"] == pytest.approx((0.80 + 0.81 + 0.79) / 3)
    assert (out / "curves.png").is_file() and (out / "parity.png").is_file()
    md = (out / "report.md").read_text()
    assert "### Learning curves and test parity: original baseline vs best" in md
    assert "### Learning curves of every arm of phase1/2026-01-01_00-00-00" in md
    assert "](parity.png)" in md and "](sweep2_curves.png)" in md
    saved = json.loads((out / "report.json").read_text())
    assert saved["path_parity"][0]["runs"] == ["baseline-seed1", "baseline-seed2", "baseline-seed3"]


def test_a_best_configuration_that_is_the_original_is_drawn_once(tmp_path: Path) -> None:
    sweep = tmp_path / "phase1" / "2026-01-01_00-00-00"
    fixed_design(sweep, 3)
    for seed, (b, e) in enumerate([(1.0, 1.01), (1.02, 1.0), (0.98, 0.99)], start=1):
        history(fake_run(sweep, "baseline", seed, b), [1.5, b], [1.2, b / 1.5])
        with_predictions(sweep / f"baseline-seed{seed}", 0.2)
        fake_run(sweep, "e06_lower_lr", seed, e)  # no history, no predictions
    write_summary(sweep)
    numbers = build_report([tmp_path], out=tmp_path / "r", cka=False)
    assert [c["label"] for c in numbers["path_curves"]] == ["original baseline"]
    assert [p["label"] for p in numbers["path_parity"]] == ["original baseline"]
    assert set(numbers["sweeps"][0]["curves"]) == {"baseline"}  # e06 has no history.csv
    assert numbers["sweeps"][0]["curves"]["baseline"]["val_median"] == pytest.approx([1.5, 1.0])
