"""The sweep summary: decisions, seeds, failed and missing runs, verdict, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fusion_tuner.cli.summary import main as summary_main
from fusion_tuner.sweeps.sequential import mde
from fusion_tuner.sweeps.summary import DOWN, INCONCLUSIVE, NONE, SAME, UP
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import fake_run, fixed_design
from tests.helpers.sweeps import patch_metrics as _patch
from tests.helpers.sweeps import winning_sweep as _winning_sweep


def test_summary_lists_every_run_with_decisions_and_flags(tmp_path: Path) -> None:
    for seed, (b, e1, e2) in enumerate([(1.0, 0.9, 1.2), (1.02, 0.92, 1.23)], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        fake_run(
            tmp_path,
            "e01_conservative_regularization",
            seed,
            e1,
            config={"regularization": {"graph_dropout": 0.2}},
        )
        fake_run(
            tmp_path,
            "e02_aggressive_regularization",
            seed,
            e2,
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
    jobs = [
        [f"experiment={e}", f"random_seed={seed}"]
        for e in (
            "baseline",
            "e01_conservative_regularization",
            "e02_aggressive_regularization",
            "e06_lower_lr",
            "e07_conservative_lr",
        )
        for seed in (1, 2)
    ]
    fixed_design(tmp_path, 2, jobs)
    s = write_summary(tmp_path, 0.02)
    rows = {(r["experiment"], r["seed"]): r for r in s.rows}
    assert {e for e, _ in rows} == {
        "baseline",
        "e01_conservative_regularization",
        "e02_aggressive_regularization",
        "e06_lower_lr",
        "e07_conservative_lr",
    }
    e01 = rows["e01_conservative_regularization", 1]
    assert e01["decision"] == DOWN
    assert e01["delta_val_mae_pct"] == pytest.approx(-10.0)  # against the same seed's baseline
    assert e01["delta_test_mae"] == pytest.approx(0.9 * 1.1 - 1.0 * 1.1)
    assert e01["overrides"] == "regularization.graph_dropout=0.2"
    e02 = rows["e02_aggressive_regularization", 2]
    assert e02["decision"] == UP
    assert "overfitting (gap > 2x)" in e02["flags"]
    assert "early stopping could not fire" in e02["flags"]
    assert rows["e06_lower_lr", 1]["status"] == "failed"
    assert rows["e06_lower_lr", 1]["error"] == "DataError: id_prop.csv not found"
    assert rows["e06_lower_lr", 2]["status"] == "missing"
    assert rows["e07_conservative_lr", 1]["status"] == "missing"
    assert s.decisions["e06_lower_lr"].decision == NONE
    assert s.winner == "e01_conservative_regularization"
    assert "e01_conservative_regularization lowered validation MAE by 9.9%" in s.verdict
    assert "4 run(s) failed or did not finish" in s.verdict
    with (tmp_path / "summary.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 10
    md = (tmp_path / "summary.md").read_text()
    assert "## Runs that failed or did not finish" in md and "e07_conservative_lr" in md
    assert "Rule: each experiment's change in validation MAE" in md
    assert "τ = 2% of the baseline's mean validation MAE = 0.0202" in md
    assert "| e01_conservative_regularization | 2 / 2 (paired t) | -0.1 (-9.9%) |" in md
    assert (tmp_path / "summary.png").stat().st_size > 1000


def test_summary_json_holds_decisions_intervals_and_the_winner(tmp_path: Path) -> None:
    fixed_design(tmp_path, 3)
    for seed, (b, e) in enumerate([(1.0, 0.90), (1.02, 0.91), (0.98, 0.92)], start=1):
        fake_run(
            tmp_path,
            "baseline",
            seed,
            b,
            config={"scheduler": {"learning_rate": 0.001, "epochs": 100}},
        )
        fake_run(
            tmp_path,
            "e06_lower_lr",
            seed,
            e,
            config={"scheduler": {"learning_rate": 0.0005, "epochs": 300}},
        )
    write_summary(tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    e06 = data["decisions"]["e06_lower_lr"]
    assert e06["decision"] == DOWN and e06["method"] == "paired t" and e06["n"] == 3
    assert e06["delta_val_mae"] == pytest.approx(-0.09)
    lo, hi = e06["interval"]
    assert lo < -0.09 < hi < 0
    assert data["winner"]["experiment"] == "e06_lower_lr"
    assert data["winner"]["overrides"] == {
        "scheduler.epochs": 300,
        "scheduler.learning_rate": 0.0005,
    }
    assert data["winner"]["command_line"] == [
        "scheduler.epochs=300",
        "scheduler.learning_rate=0.0005",
    ]
    assert data["base"] is None
    assert data["next_base"]["winner"] == "e06_lower_lr"
    assert data["next_base"]["overrides"] == data["winner"]["overrides"]
    assert data["next_base"]["sweep"] == str(tmp_path.resolve())
    assert data["threshold"] == 0.02 and "τ = 2%" in data["rule"]
    assert len(data["runs"]) == 6


def test_validation_and_test_disagreeing_in_sign_are_flagged(tmp_path: Path) -> None:
    for seed, b in enumerate([1.0, 1.02, 0.98], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        d = fake_run(tmp_path, "e06_lower_lr", seed, b - 0.1)
        metrics = json.loads((d / "metrics.json").read_text())
        metrics["test"]["mae"] = b * 1.1 + 0.05  # worse on test
        metrics["max_epochs"] = 300
        (d / "metrics.json").write_text(json.dumps(metrics))
    s = write_summary(tmp_path)
    d = s.decisions["e06_lower_lr"]
    assert d.decision == DOWN and d.test_delta == pytest.approx(0.05) and d.disagrees
    md = (tmp_path / "summary.md").read_text()
    assert "⚠️ sign differs from val" in md


def test_more_epochs_than_the_baseline_are_noted(tmp_path: Path) -> None:
    for seed in (1, 2):
        fake_run(tmp_path, "baseline", seed, 1.0 + 0.01 * seed)
        d = fake_run(tmp_path, "e06_lower_lr", seed, 0.8 + 0.01 * seed)
        metrics = json.loads((d / "metrics.json").read_text())
        (d / "metrics.json").write_text(json.dumps(metrics | {"max_epochs": 300}))
        b = tmp_path / f"baseline-seed{seed}" / "metrics.json"
        b.write_text(json.dumps(json.loads(b.read_text()) | {"max_epochs": 100}))
    note = write_summary(tmp_path).decisions["e06_lower_lr"].note
    assert "epochs 300 vs the baseline's 100" in note and "validation MAE also chose" in note


def test_verdicts_for_unchanged_worse_and_inconclusive(tmp_path: Path) -> None:
    same, worse, unclear = tmp_path / "same", tmp_path / "worse", tmp_path / "unclear"
    fixed_design(same, 2)
    fixed_design(worse, 2)
    fixed_design(unclear, 3)
    for seed, b in enumerate([1.0, 1.01], start=1):
        for d, val in ((same, b + 0.001), (worse, b + 0.3)):
            fake_run(d, "baseline", seed, b)
            fake_run(d, "e08_weaker_cross_attention", seed, val)
    assert "try the phase 4 settings" in write_summary(same).verdict
    assert "back off to more conservative settings" in write_summary(worse).verdict
    for seed, (b, e) in enumerate([(1.0, 0.8), (1.1, 1.2), (0.9, 0.95)], start=1):
        fake_run(unclear, "baseline", seed, b)
        fake_run(unclear, "e08_weaker_cross_attention", seed, e)
    fake_run(unclear, "e09_no_cross_attention", 1, 0.5)  # one seed: never a winner
    s = write_summary(unclear)
    assert s.winner is None
    assert s.decisions["e09_no_cross_attention"].decision == INCONCLUSIVE
    assert s.verdict.startswith(
        "No clear winner: e08_weaker_cross_attention, e09_no_cross_attention are still open"
    )
    # e09 ran one seed of three: the next round adds seeds 2 and 3 to it (and to no other arm)
    assert "e09_no_cross_attention: fewer than 2 seed pairs" in s.verdict
    assert "rerun the same sweep command into" in s.verdict
    assert s.assessment is not None and s.assessment.next_round == {
        "e09_no_cross_attention": [2, 3]
    }
    e08 = s.decisions["e08_weaker_cross_attention"]
    assert e08.arm.stop == "waiting for the other experiments' seeds" and e08.arm.stats.n == 3
    assert "detectable with 80% power at 3 pairs" in s.verdict
    md = (unclear / "summary.md").read_text()
    assert "seeds 3 (waiting for the other experiments' seeds)" in md
    nb = json.loads((unclear / "summary.json").read_text())["next_base"]
    assert nb["winner"] is None and nb["overrides"] == {}
    assert "keeps the original baseline" in nb["note"]


def test_seeds_are_aggregated_per_experiment(tmp_path: Path) -> None:
    fixed_design(tmp_path, 3)
    for seed, (b, e) in enumerate([(1.0, 0.90), (1.02, 0.91), (0.98, 0.92)], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        fake_run(tmp_path, "e03_two_layer_fusion", seed, e)
    s = write_summary(tmp_path)
    d = s.decisions["e03_two_layer_fusion"]
    assert (d.decision, d.n, d.n_base, d.method) == (DOWN, 3, 3, "paired t")
    assert d.delta == pytest.approx(-0.09)
    assert len(s.rows) == 6


def test_a_rerun_with_another_sweep_key_still_finds_the_completed_runs(tmp_path: Path) -> None:
    # a rerun with sweep.max_seeds=7 records its jobs with that override; the completed runs it
    # skipped keep the overrides they ran with: they are the planned jobs, not "missing"
    jobs = [
        [f"experiment={e}", f"random_seed={seed}", "sweep.max_seeds=7", "+trainer.progress=bar"]
        for e in ("baseline", "e03_two_layer_fusion")
        for seed in (1, 2, 3)
    ]
    fixed_design(tmp_path, 3, jobs=jobs)
    for seed, (b, e) in enumerate([(1.0, 0.90), (1.02, 0.91), (0.98, 0.92)], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        fake_run(tmp_path, "e03_two_layer_fusion", seed, e)
    s = write_summary(tmp_path)
    assert len(s.rows) == 6 and all(r["status"] == "completed" for r in s.rows)
    assert s.decisions["e03_two_layer_fusion"].n == 3
    # a job that changes what a run computes is still missing when no run carried it out
    fixed_design(tmp_path, 3, jobs=[*jobs, ["experiment=baseline", "random_seed=4"]])
    assert [r["status"] for r in write_summary(tmp_path).rows].count("missing") == 1


def test_summary_cli(tmp_path: Path, capsys) -> None:
    fake_run(tmp_path, "baseline", 1, 1.0)
    assert summary_main([str(tmp_path)]) == 0
    assert "Sweep summary" in capsys.readouterr().out
    assert (tmp_path / "summary.json").is_file()
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


CORRUPT_METRICS = {
    "truncated": (b'{"status": "compl', "JSONDecodeError"),
    "list": (b"[]", "holds a JSON list, not an object"),
    "not_utf8": (b'\xff\xfe{"status": "completed"}', "UnicodeDecodeError"),
    "text_mae": (
        b'{"status": "completed", "val": {"mae": "abc"}, "test": {"mae": 1.0}}',
        "val.mae = 'abc' is not a number",
    ),
}


def corrupt_sweep(sweep: Path) -> None:
    """Two good arms, four runs with a corrupt metrics.json, one with a corrupt config.yaml and
    an unreadable sweep_plan.json."""
    for seed, (b, e) in enumerate([(1.0, 0.8), (1.02, 0.81), (0.98, 0.79)], start=1):
        fake_run(sweep, "baseline", seed, b)
        fake_run(sweep, "e06_lower_lr", seed, e)
    for seed, (data, _) in enumerate(CORRUPT_METRICS.values(), start=10):
        (fake_run(sweep, "e07", seed, 1.0) / "metrics.json").write_bytes(data)
    (fake_run(sweep, "e08", 1, 0.5) / ".hydra" / "config.yaml").write_text("a: [x\n b: :\n")
    (sweep / "sweep_plan.json").write_text('{"jobs": [[')


def test_corrupt_run_files_are_reported_unreadable_and_the_rest_summarised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt_sweep(tmp_path)
    assert summary_main([str(tmp_path)]) == 0
    assert "sweep_plan.json is unreadable (JSONDecodeError" in caplog.text
    rows = {r["run_dir"]: r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    for seed, (_, why) in enumerate(CORRUPT_METRICS.values(), start=10):
        row = rows[f"e07-seed{seed}"]
        assert row["status"] == "unreadable" and row["val_mae"] == ""
        assert row["error"].startswith("metrics.json is unreadable") and why in row["error"]
    e08 = rows["e08-seed1"]
    assert e08["status"] == "unreadable" and e08["val_mae"] == ""  # 0.5 would have won
    assert "config.yaml is unreadable (ParserError" in e08["error"]
    decisions = json.loads((tmp_path / "summary.json").read_text())["decisions"]
    e06 = decisions["e06_lower_lr"]  # its three good pairs, whatever the corrupt runs hold
    assert e06["n"] == 3 and e06["delta_val_mae"] == pytest.approx(-0.2, abs=1e-9)
    assert "e07 (seed 13, e07-seed13): unreadable" in (tmp_path / "summary.md").read_text()


def test_the_plan_report_goes_on_past_corrupt_run_files(tmp_path: Path) -> None:
    from fusion_tuner.cli.report import main as report_main

    sweep = tmp_path / "multirun" / "phase1" / "2026-01-01_00-00-00"
    corrupt_sweep(sweep)
    assert report_main([str(tmp_path / "multirun"), "--out", str(tmp_path / "r"), "--no-cka"]) == 0
    page = (tmp_path / "r" / "report.md").read_text()
    assert page.count("| unreadable |") == 5


def test_a_stalled_run_is_flagged_and_left_out_of_the_interval(tmp_path: Path) -> None:
    fixed_design(tmp_path, 4)
    base = [0.76, 0.89, 1.29, 0.80]  # seed 3 stalled: best epoch 3 of 8, 1.29 > 1.3 x median
    for seed, b in enumerate(base, start=1):
        d = fake_run(tmp_path, "baseline", seed, b)
        _patch(d, best_epoch=3 if seed == 3 else 7, epochs_run=8)
        e = fake_run(tmp_path, "e06_lower_lr", seed, b - 0.1 + 0.002 * seed if seed != 3 else 0.7)
        _patch(e, best_epoch=7, epochs_run=8)
    s = write_summary(tmp_path)
    assert s.assessment is not None and s.assessment.baseline_stalled == ["baseline-seed3"]
    d = s.decisions["e06_lower_lr"]
    assert d.arm.stats.n == 3  # the stalled seed's pair is left out, the other pairs stay
    assert d.delta == pytest.approx(-0.1 + 0.002 * (1 + 2 + 4) / 3)
    rows = {(r["experiment"], r["seed"]): r for r in s.rows}
    assert "stalled (left out of the interval)" in rows["baseline", 3]["flags"]
    assert "stalled" not in rows["baseline", 1]["flags"]
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["design"]["baseline_stalled_runs"] == ["baseline-seed3"]
    assert "best epoch <= 40%" in data["design"]["stall_rule"]


def test_a_failed_run_removes_only_its_own_pair(tmp_path: Path) -> None:
    fixed_design(tmp_path, 4)
    for seed, b in enumerate([1.0, 1.02, 0.98, 1.01], start=1):
        fake_run(tmp_path, "baseline", seed, b)
        if seed == 2:
            fake_run(tmp_path, "e06_lower_lr", seed, None, status="failed", error="boom")
        else:
            fake_run(tmp_path, "e06_lower_lr", seed, b - 0.1 - 0.001 * seed)
    d = write_summary(tmp_path).decisions["e06_lower_lr"]
    assert d.method == "paired t" and d.arm.stats.n == 3
    assert d.arm.failed == ["e06_lower_lr-seed2"]
    data = json.loads((tmp_path / "summary.json").read_text())["decisions"]["e06_lower_lr"]
    assert data["pairs_used"] == 3 and data["failed_runs"] == ["e06_lower_lr-seed2"]
    assert data["seeds_run"] == [1, 2, 3, 4]


def test_runs_that_learned_nothing_are_not_compared(tmp_path: Path) -> None:
    fixed_design(tmp_path, 3)
    for seed, (b, e) in enumerate([(1.0, 0.7), (1.02, 0.71), (0.98, 0.69)], start=1):
        _patch(fake_run(tmp_path, "baseline", seed, b), val={"skill": 0.4})
        # fused: exactly the mean predictor's MAE
        _patch(fake_run(tmp_path, "e09_no_cross_attention", seed, e), val={"skill": 0.0004})
    s = write_summary(tmp_path)
    d = s.decisions["e09_no_cross_attention"]
    assert d.decision == "🚫 learned nothing" and s.winner is None
    assert "do not beat the training-mean predictor" in (tmp_path / "summary.md").read_text()
    assert "Learned nothing" in s.verdict and "e09_no_cross_attention" in s.verdict
    rows = [r for r in s.rows if r["experiment"] == "e09_no_cross_attention"]
    assert all("learned nothing (validation skill 0.00" in r["flags"] for r in rows)
    data = json.loads((tmp_path / "summary.json").read_text())["decisions"]
    assert data["e09_no_cross_attention"]["stop_reason"] == "learned nothing"
    assert data["e09_no_cross_attention"]["next_seeds"] == []


def test_summary_json_records_the_design_and_each_arms_procedure(tmp_path: Path) -> None:
    # the default design (looks at 3, 5, 7, 9, 10): after 3 seeds an open arm asks for 4 and 5
    for seed, (b, e, f) in enumerate([(1.0, 0.9, 1.0), (1.1, 1.06, 1.1), (0.9, 0.85, 0.9)], 1):
        fake_run(tmp_path, "baseline", seed, b)
        fake_run(tmp_path, "e06_lower_lr", seed, e)
        fake_run(tmp_path, "e01_conservative_regularization", seed, f + 0.001 * seed)
    s = write_summary(tmp_path)
    data = json.loads((tmp_path / "summary.json").read_text())
    design = data["design"]
    assert design["looks"] == [3, 5, 7, 9, 10] and design["looks_done"] == 1
    assert design["alpha_spending"].startswith("Lan-DeMets O'Brien-Fleming")
    assert design["from"] == "the defaults"
    e06 = data["decisions"]["e06_lower_lr"]
    assert e06["verdict"] == "open" and e06["stop_reason"] == "waiting for seeds"
    assert e06["next_seeds"] == [4, 5] and e06["seeds_run"] == [1, 2, 3]
    lo, hi = e06["raw_interval"]
    alo, ahi = e06["adjusted_interval"]
    assert alo < lo < hi < ahi  # the adjusted interval is wider
    assert e06["adjusted_level"] < 0.05
    # the MDE of the 3 pairs at Holm's level for the two experiments, 0.05 / 2
    assert e06["mde"] == pytest.approx(mde(e06["sd_per_seed_difference"], 3, 0.025))
    elo, ehi = e06["equivalence_interval"]
    assert elo < e06["delta_val_mae"] < ehi
    assert e06["branch_in_reach"] == "down" and e06["seeds_for_branch"] > 3
    assert design["next_round"]["baseline"] == [4, 5]
    assert s.decisions["e06_lower_lr"].decision == INCONCLUSIVE


def test_an_unconfirmed_winner_is_not_chained(tmp_path: Path) -> None:
    from fusion_tuner.sweeps.chain import read_next_base

    # no confirmation runs yet: pending
    _winning_sweep(tmp_path / "pending", None)
    s = write_summary(tmp_path / "pending")
    assert s.winner == "e06_lower_lr" and s.confirmation.status == "pending"
    nb = read_next_base(tmp_path / "pending")
    assert nb.winner is None and nb.overrides == {}
    assert "won the selection but is not confirmed" in nb.note
    assert "not confirmed yet: rerun the same sweep command" in s.verdict
    assert s.verdict.startswith("Selected: e06_lower_lr lowered")  # no "Tuning works" yet
    # fresh seeds where e06 is no better: not confirmed, not chained
    _winning_sweep(tmp_path / "curse", [(1.0, 1.01), (0.9, 0.88), (1.1, 1.12)])
    s = write_summary(tmp_path / "curse")
    assert s.confirmation.status == "not confirmed" and s.confirmation.pairs == 3
    assert read_next_base(tmp_path / "curse").winner is None
    assert "fresh seeds did not confirm it" in s.verdict
    assert s.verdict.startswith("Not confirmed: e06_lower_lr lowered")
    # the confirmation runs never enter the selection's decision
    assert s.decisions["e06_lower_lr"].arm.seeds_run == [1, 2, 3]
    rows = [r for r in s.rows if r["seed"] == 1001]
    assert all("confirmation run (not used in selection)" in r["flags"] for r in rows)


def test_a_confirmed_winner_is_chained(tmp_path: Path) -> None:
    from fusion_tuner.sweeps.chain import read_next_base

    _winning_sweep(tmp_path, [(1.0, 0.8), (0.9, 0.71), (1.1, 0.9)])
    s = write_summary(tmp_path)
    assert s.confirmation.status == "confirmed" and s.confirmation.high < 0
    nb = read_next_base(tmp_path)
    assert nb.winner == "e06_lower_lr" and nb.overrides == {"scheduler.learning_rate": 0.0005}
    assert "confirmed on fresh seeds 1001, 1002, 1003" in s.verdict
    assert s.verdict.startswith("Tuning works: e06_lower_lr lowered")
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["confirmation"]["status"] == "confirmed"
    assert data["confirmation"]["seeds"] == [1001, 1002, 1003]


def _plan(sweep: Path, **design) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    base = {"initial_seeds": 3, "seeds_per_round": 2, "max_seeds": 3}
    (sweep / "sweep_plan.json").write_text(json.dumps({"jobs": [], "design": base | design}))


def test_the_family_level_and_the_equivalence_margin_change_the_decisions(tmp_path: Path) -> None:
    """sweep.family_alpha and sweep.equivalence_margin, as the rounds sweeper records them in the
    plan: a stricter family level widens the adjusted interval; a margin below the observed
    change and spread can no longer call an arm unchanged."""
    results = {}
    for name, design in {
        "default": {},
        "strict": {"family_alpha": 0.001},
        "narrow": {"equivalence_margin": 0.001},
    }.items():
        sweep = tmp_path / name
        _plan(sweep, **design)
        for seed, (b, e1, e6) in enumerate(
            [(1.0, 1.003, 0.80), (1.02, 1.021, 0.81), (0.98, 0.984, 0.79)], 1
        ):
            fake_run(sweep, "baseline", seed, b)
            fake_run(sweep, "e01_conservative_regularization", seed, e1)
            fake_run(sweep, "e06_lower_lr", seed, e6)
        write_summary(sweep)
        results[name] = json.loads((sweep / "summary.json").read_text())["decisions"]
    lo, hi = results["default"]["e06_lower_lr"]["adjusted_interval"]
    slo, shi = results["strict"]["e06_lower_lr"]["adjusted_interval"]
    assert slo < lo < hi < shi  # the same pairs, a stricter level: a wider interval
    assert results["default"]["e01_conservative_regularization"]["decision"] == SAME
    assert results["narrow"]["e01_conservative_regularization"]["decision"] != SAME


def test_two_pairs_left_by_a_failed_run_decide_nothing(tmp_path: Path) -> None:
    """A fixed 3-seed design whose experiment lost seed 3 to a failure keeps 2 pairs whose
    differences agree (t about 2,000 on one degree of freedom): open, with the reason and the
    fix, not ✅ down (it was before the minimum of pairs)."""
    fixed_design(tmp_path, 3)
    for seed, b in enumerate([1.0, 1.02, 0.98], start=1):
        fake_run(tmp_path, "baseline", seed, b)
    fake_run(tmp_path, "e06_lower_lr", 1, 0.9000)
    fake_run(tmp_path, "e06_lower_lr", 2, 0.9201)
    fake_run(tmp_path, "e06_lower_lr", 3, None, status="failed", error="RuntimeError: boom")
    s = write_summary(tmp_path)
    d = s.decisions["e06_lower_lr"]
    assert d.decision == INCONCLUSIVE and d.arm.stop == "too few seed pairs"
    assert d.arm.stats.n == 2
    said = "2 seed pairs with the baseline, fewer than the 3 a decision needs in this design"
    assert said in d.note and said in s.verdict
    assert "rerun the sweep into its directory" in s.verdict
    # the step is to complete the failed run, not a new sweep on fresh seeds
    assert "complete the failed or missing runs of e06_lower_lr first" in s.verdict
    assert "fresh seeds" not in s.verdict
