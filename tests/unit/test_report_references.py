"""The training-mean predictor beside every MAE: in summary.md, summary.csv/json and the plan
report, with each arm's skill and R², and arms that learned nothing marked."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import fake_run, fixed_design, patch_metrics

LR = {"scheduler": {"learning_rate": 0.001}}


def skilled(run: Path, val: float, val_mean: float, test_mean: float) -> Path:
    """Give a fake run (val MAE ``val``, test MAE ``1.1 val``) its mean predictor's MAE."""
    test = 1.1 * val
    patch_metrics(
        run,
        val={"mean_predictor_mae": val_mean, "skill": 1 - val / val_mean, "r2": 0.6},
        test={"mean_predictor_mae": test_mean, "skill": 1 - test / test_mean, "r2": 0.5},
    )
    return run


def sweep_with(sweep: Path, base_mean: float, exp_mean: float) -> Path:
    """baseline (val MAE 1.0) and e06 (0.8) over 3 seeds; ``*_mean``: their mean predictor's
    validation MAE (test: 1.5 x that)."""
    fixed_design(sweep, 3)
    for seed in (1, 2, 3):
        b = fake_run(sweep, "baseline", seed, 1.0, config=LR)
        skilled(b, 1.0, base_mean, 1.5 * base_mean)
        e = fake_run(sweep, "e06_lower_lr", seed, 0.8 + 0.01 * seed, config=LR)
        skilled(e, 0.8 + 0.01 * seed, exp_mean, 1.5 * exp_mean)
    return sweep


def test_summary_puts_the_mean_predictor_beside_every_mae(tmp_path: Path) -> None:
    sweep = sweep_with(tmp_path / "s", base_mean=2.0, exp_mean=0.85)
    s = write_summary(sweep)
    ref = s.references
    assert ref["baseline"].val_mean_mae == 2.0 and ref["baseline"].test_mean_mae == 3.0
    assert ref["baseline"].val_skill == 0.5 and not ref["baseline"].learned_nothing
    assert ref["e06_lower_lr"].learned_nothing  # 0.82 against 0.85: skill 0.035
    md = (sweep / "summary.md").read_text()
    assert "## Against the training-mean predictor" in md
    assert "| baseline | 3 | 1 | 2 | 1.1 | 3 | 0.50 / 0.63 | 0.60 / 0.50 | learned |" in md
    refs = md.split("## Against the training-mean predictor")[1]
    e06 = next(line for line in refs.splitlines() if line.startswith("| e06_lower_lr | 3 |"))
    assert e06.endswith("| LEARNED NOTHING (skill below 0.1) |")
    header = next(line for line in md.splitlines() if line.startswith("| experiment | seed |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[cols.index("val_mae") + 1] == "val_mean_mae"
    assert cols[cols.index("test_mae") + 1] == "test_mean_mae"
    assert {"val_r2", "test_r2", "val_skill", "test_skill"} <= set(cols)
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert {float(r["val_mean_mae"]) for r in rows} == {2.0, 0.85}
    record = json.loads((sweep / "summary.json").read_text())
    assert record["references"]["e06_lower_lr"]["learned_nothing"] is True
    assert "Learned nothing" in s.verdict and "e06_lower_lr" in s.verdict


def test_a_baseline_that_learned_nothing_is_named_in_the_verdict(tmp_path: Path) -> None:
    s = write_summary(sweep_with(tmp_path / "s", base_mean=1.02, exp_mean=2.0))
    assert s.references["baseline"].learned_nothing
    assert "The baseline itself learned nothing (median validation skill 0.02; validation " in (
        s.verdict
    )
    assert "against 1.02 for predicting the training mean" in s.verdict


def report_of(tmp_path: Path, base_mean: float, exp_mean: float) -> tuple[dict, str]:
    sweep_with(tmp_path / "multirun" / "phase1" / "2026-01-01_00-00-00", base_mean, exp_mean)
    numbers = build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    return numbers, (tmp_path / "r" / "report.md").read_text()


def test_the_report_shows_the_references_on_the_path_and_per_sweep(tmp_path: Path) -> None:
    numbers, md = report_of(tmp_path, base_mean=2.0, exp_mean=1.6)
    assert numbers["learned_nothing"] == []
    assert (
        "| step | configuration | overrides of conf/ | seeds | val MAE | mean predictor val MAE "
        "| test MAE | mean predictor test MAE | skill val / test | R² val / test | learned? |"
    ) in md
    original = next(line for line in md.splitlines() if line.startswith("| 0 | original"))
    assert "| 1 ± 0 | 2 ± 0 | 1.1 ± 0 | 3 ± 0 | 0.50 / 0.63 | 0.60 / 0.50 | learned |" in original
    assert "| experiment | seeds | val MAE | mean predictor val MAE |" in md  # per sweep
    assert "| 1 (2) | 1.1 (3) | 0.50 / 0.63 |" in md  # each run beside its mean predictor
    assert numbers["path"][1]["reference"]["val_mean_mae"] == pytest.approx(1.6)
    assert numbers["sweeps"][0]["references"]["baseline"]["val_r2"] == 0.6
    assert "LEARNED NOTHING" not in md


def test_the_report_marks_a_configuration_that_learned_nothing(tmp_path: Path) -> None:
    numbers, md = report_of(tmp_path, base_mean=1.02, exp_mean=2.0)
    assert numbers["learned_nothing"] == ["original baseline (phase1/2026-01-01_00-00-00)"]
    assert (
        "**LEARNED NOTHING: step 0 (original baseline (phase1/2026-01-01_00-00-00)) has median "
        "validation skill 0.02: validation MAE 1 against 1.02 for predicting the training mean"
    ) in md
    # the gap ratio of a model that learned nothing is not read as met
    gap = next(c for c in numbers["criteria"] if c["criterion"] == "train–validation gap ratio")
    assert gap["met"] is None
    assert "an underfit model meets this trivially" in gap["value"]
    assert "The baseline itself learned nothing" in md  # the sweep's verdict


def test_a_gap_ratio_of_runs_still_improving_says_so(tmp_path: Path) -> None:
    sweep = sweep_with(tmp_path / "multirun" / "phase1" / "t", base_mean=2.0, exp_mean=1.6)
    for seed in (1, 2):  # best epoch the last (9 of 9) in 2 of each arm's 3 runs
        for exp in ("baseline", "e06_lower_lr"):
            patch_metrics(sweep / f"{exp}-seed{seed}", best_epoch=9, epochs_run=9)
    numbers = build_report([tmp_path / "multirun"], out=tmp_path / "r", cka=False)
    gap = next(c for c in numbers["criteria"] if c["criterion"] == "train–validation gap ratio")
    assert gap["met"] is True  # still below 2, and read with the caveat
    assert "best epoch the last in 2 of 3 runs: still improving when they stopped" in gap["status"]
    # best epoch 5 of 9 (the fake runs' default): no caveat
    _, md = report_of(tmp_path / "other", base_mean=2.0, exp_mean=1.6)
    assert "still improving when they stopped" not in md


def test_equal_values_over_seeds_have_a_spread_of_exactly_zero(tmp_path: Path) -> None:
    """The mean predictor's MAE is the same for every seed of one split: its spread prints as 0,
    not as the rounding noise of a float sum (``± 2.3e-16``)."""
    from fusion_tuner.rundir import Run
    from fusion_tuner.sweeps.plan_report import _stats

    value = 1.3881234  # three of it sum to a float whose mean differs from it by 1 ulp
    runs = []
    for seed in (1, 2, 3):
        d = fake_run(tmp_path, "baseline", seed, 1.0)
        m = json.loads((d / "metrics.json").read_text())
        m["test"]["mean_predictor_mae"] = value
        (d / "metrics.json").write_text(json.dumps(m))
        runs.append(Run(d))
    assert _stats(runs, "test", "mean_predictor_mae").endswith(" ± 0")
