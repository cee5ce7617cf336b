"""Which grids the rounds sweeper extends with seeds, and how a round's jobs are built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion_tuner.config import SweepConfig, sweep_problems
from fusion_tuner.sweeps.plan import read_plan, write_plan
from fusion_tuner.sweeps.rounds import design_for, record_plan, with_seed


def grid(exps: list[str], seeds: list[int], *extra: str) -> list[list[str]]:
    return [[f"experiment={e}", f"random_seed={s}", *extra] for e in exps for s in seeds]


PHASE = ["baseline", "e01_conservative_regularization", "e06_lower_lr"]


def test_the_phase_grid_takes_rounds_up_to_the_cap() -> None:
    design, why = design_for(grid(PHASE, [1, 2, 3], "budget=quick"), SweepConfig())
    assert why == "" and design.looks == [3, 5, 7, 9, 10]


@pytest.mark.parametrize(
    ("jobs", "sweep", "reason"),
    [
        (grid(PHASE, [42]), SweepConfig(), "the grid's seeds [42] are not 1..3"),
        (grid(PHASE, [1, 2, 3]), SweepConfig(max_seeds=3), "sweep.max_seeds=3"),
        (grid(["e01", "e06"], [1, 2, 3]), SweepConfig(), "no baseline"),
        (
            [*grid(PHASE, [1, 2, 3], "batch.batch_size=32"), *grid(PHASE, [1, 2, 3], "b=64")],
            SweepConfig(),
            "varies keys besides",
        ),
    ],
)
def test_other_grids_run_once_as_a_fixed_design(
    jobs: list[list[str]], sweep: SweepConfig, reason: str
) -> None:
    design, why = design_for(jobs, sweep)
    assert reason in why
    seeds = {o for j in jobs for o in j if o.startswith("random_seed=")}
    assert design.looks == [len(seeds)]


def test_a_rounds_job_is_the_grid_job_with_another_seed() -> None:
    job = ["experiment=e06_lower_lr", "random_seed=1", "budget=quick"]
    assert with_seed(job, 4) == ["experiment=e06_lower_lr", "random_seed=4", "budget=quick"]


def test_the_plan_keeps_the_rounds_when_a_rerun_rewrites_the_grid(tmp_path: Path) -> None:
    jobs = grid(PHASE, [1, 2, 3])
    write_plan(tmp_path, jobs)
    extra = [["experiment=e06_lower_lr", "random_seed=4"], ["experiment=baseline", "random_seed=4"]]
    record_plan(tmp_path, rounds=extra)
    write_plan(tmp_path, jobs)  # the callback of a rerun
    assert read_plan(tmp_path) == jobs + extra
    assert json.loads((tmp_path / "sweep_plan.json").read_text())["rounds"] == extra


def test_bad_sweep_settings_are_named() -> None:
    problems = sweep_problems(SweepConfig(initial_seeds=1, max_seeds=0, family_alpha=0.7))
    text = "; ".join(problems)
    assert "sweep.initial_seeds=1 must be >= 2" in text
    assert "sweep.max_seeds=0 must be >= sweep.initial_seeds=1" in text
    assert "sweep.family_alpha=0.7 must lie in (0, 0.5)" in text
    assert sweep_problems(SweepConfig()) == []


class FakeLauncher:
    """Writes a completed run per job (validation MAE from ``value(experiment, seed)``) and
    skips runs that completed, as a rerun of ``python -m fusion_tuner`` does."""

    def __init__(self, sweep: Path, value) -> None:
        self.sweep, self.value, self.batches = sweep, value, []

    def launch(self, batch, initial_job_idx: int):
        from types import SimpleNamespace

        from tests.helpers.sweeps import fake_run

        ran = []
        for job in batch:
            exp = next(o.split("=")[1] for o in job if o.startswith("experiment="))
            seed = int(next(o.split("=")[1] for o in job if o.startswith("random_seed=")))
            if not (self.sweep / f"{exp}-seed{seed}" / "metrics.json").is_file():
                fake_run(self.sweep, exp, seed, self.value(exp, seed))
                ran.append((exp, seed))
        self.batches.append(ran)
        return [SimpleNamespace(return_value=0.0) for _ in batch]


def fake_sweeper(
    sweep: Path,
    launcher: FakeLauncher,
    *,
    experiments: str = "baseline,e01_conservative_regularization,e06_lower_lr",
    **sweep_keys,
):
    from types import SimpleNamespace

    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from omegaconf import OmegaConf

    config = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(sweep)},
                "callbacks": {"sweep_summary": {"threshold": 0.02}},
            },
            "sweep": {**SweepConfig().__dict__, **sweep_keys},
        }
    )
    params = {"experiment": experiments}
    return SimpleNamespace(
        config=config,
        hydra_context=SimpleNamespace(config_loader=None),
        launcher=launcher,
        max_batch_size=None,
        split_arguments=BasicSweeper.split_arguments,
        _parse_config=lambda: [f"{k}={v}" for k, v in params.items()],
        validate_batch_is_legal=lambda batch: None,
    )


def noise(seed: int) -> float:
    return 0.01 * ((seed * 7919) % 11 - 5) / 5  # a deterministic ±1% per seed


def value(exp: str, seed: int) -> float:
    base = 1.0 + 0.05 * noise(seed)
    return {
        "baseline": base,
        "e06_lower_lr": 0.9 * base + 2 * noise(seed + 3),  # 10% lower, ±2% per seed
        "e01_conservative_regularization": base + noise(seed + 5),  # the same, ±1% per seed
    }[exp]


def test_rounds_add_seeds_to_open_arms_confirm_the_winner_and_resume(tmp_path: Path) -> None:
    from fusion_tuner.sweeps.chain import read_next_base
    from fusion_tuner.sweeps.rounds import run_rounds
    from fusion_tuner.sweeps.summary_files import write_summary

    sw = tmp_path / "sw"
    launcher = FakeLauncher(sw, value)
    run_rounds(fake_sweeper(sw, launcher), ["random_seed=1,2,3"])
    assert len(launcher.batches[0]) == 9  # the grid
    # at 3 seeds e01 (±1%) is already within ±5%: unchanged, it stops; e06 (10% lower, ±2%)
    # is not yet down at the first look's strict level: seeds 4 and 5 for it and the baseline
    assert set(launcher.batches[1]) == {
        (e, s) for e in ("baseline", "e06_lower_lr") for s in (4, 5)
    }
    # e06 down at 5 seeds: no further round; the winner is re-run on fresh seeds
    assert set(launcher.batches[2]) == {
        (e, s) for e in ("baseline", "e06_lower_lr") for s in (1001, 1002, 1003)
    }
    assert len(launcher.batches) == 3
    s = write_summary(sw)
    assert s.decisions["e06_lower_lr"].decision == "✅ down"
    assert s.decisions["e01_conservative_regularization"].decision == "⚠️ unchanged"
    assert s.decisions["e06_lower_lr"].arm.seeds_run == [1, 2, 3, 4, 5]
    assert s.decisions["e01_conservative_regularization"].arm.seeds_run == [1, 2, 3]
    assert s.confirmation.status == "confirmed"
    assert read_next_base(sw).winner == "e06_lower_lr"
    plan = json.loads((sw / "sweep_plan.json").read_text())
    assert len(plan["rounds"]) == 4 and len(plan["confirm_jobs"]) == 6
    # an interrupted confirmation: one of its runs is gone; the same command reruns only it
    import shutil

    shutil.rmtree(sw / "e06_lower_lr-seed1002")
    again = FakeLauncher(sw, value)
    run_rounds(fake_sweeper(sw, again), ["random_seed=1,2,3"])
    assert [b for b in again.batches if b] == [[("e06_lower_lr", 1002)]]


def test_max_seeds_equal_to_initial_seeds_runs_the_grid_once(tmp_path: Path) -> None:
    from fusion_tuner.sweeps.rounds import run_rounds

    sw = tmp_path / "sw"
    launcher = FakeLauncher(sw, lambda e, s: 1.0 + noise(s) * (3 if e != "baseline" else 1))
    run_rounds(fake_sweeper(sw, launcher, max_seeds=3, confirm_seeds=0), ["random_seed=1,2,3"])
    assert len(launcher.batches) == 1 and len(launcher.batches[0]) == 9
    plan = json.loads((sw / "sweep_plan.json").read_text())
    assert plan["design"]["max_seeds"] == 3 and "sweep.max_seeds=3" in plan["fixed_because"]


def small_change(exp: str, seed: int) -> float:
    """e06 4% lower with a 3% spread per seed (a normal draw seeded by the seed): open at a cap
    of 5 seeds, ✅ down at 7 fresh ones."""
    import numpy as np

    base = 1.0 + 0.05 * noise(seed)
    spread = 0.03 * float(np.random.default_rng(seed).normal())
    return base if exp == "baseline" else 0.96 * base + spread


def test_a_rerun_with_another_design_is_refused_and_the_verdict_says_fresh_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raising sweep.max_seeds after the last look would replay the looks already taken under
    boundaries they were never planned for (an arm decided at the old cap could reopen, the
    design's level is spent): refused before anything is launched; the verdict sends the open
    experiments to a new sweep on fresh seeds, and that sweep runs as one look of those seeds."""
    from fusion_tuner.sweeps.rounds import run_rounds
    from fusion_tuner.sweeps.summary_files import write_summary

    sw = tmp_path / "sw"
    exps = "baseline,e06_lower_lr"
    run_rounds(
        fake_sweeper(sw, FakeLauncher(sw, small_change), experiments=exps, max_seeds=5),
        ["random_seed=1,2,3"],
    )
    s = write_summary(sw)
    assert s.decisions["e06_lower_lr"].decision.startswith("❓")
    assert s.decisions["e06_lower_lr"].arm.stop == "cap reached"
    n = s.decisions["e06_lower_lr"].arm.branch_seeds
    assert n is not None and n > 5
    assert "raise sweep.max_seeds" not in s.verdict
    fresh = f"hydra.sweeper.params.random_seed=range(6,{6 + n})"
    assert fresh in s.verdict
    assert f"hydra.sweep.dir={sw}-fresh" in s.verdict
    assert "hydra.sweeper.params.experiment='baseline,e06_lower_lr'" in s.verdict

    again = FakeLauncher(sw, small_change)
    with pytest.raises(SystemExit) as exc:
        run_rounds(fake_sweeper(sw, again, experiments=exps, max_seeds=7), ["random_seed=1,2,3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "max_seeds 7 (recorded: 5)" in err and "sweep_plan.json" in err
    assert again.batches == []
    assert json.loads((sw / "sweep_plan.json").read_text())["design"]["max_seeds"] == 5
    # the same command with the recorded design goes on (nothing left to run)
    same = FakeLauncher(sw, small_change)
    run_rounds(fake_sweeper(sw, same, experiments=exps, max_seeds=5), ["random_seed=1,2,3"])
    assert [b for b in same.batches if b] == []

    # the advised follow-up: one look of the fresh seeds, paired by seed
    new = tmp_path / "sw-fresh"
    follow = FakeLauncher(new, small_change)
    run_rounds(
        fake_sweeper(new, follow, experiments=exps, confirm_seeds=0),
        [f"random_seed=range(6,{6 + n})"],
    )
    assert sorted(follow.batches[0]) == sorted(
        (e, x) for e in ("baseline", "e06_lower_lr") for x in range(6, 6 + n)
    )
    plan = json.loads((new / "sweep_plan.json").read_text())
    assert plan["design"]["max_seeds"] == plan["design"]["initial_seeds"] == n
    assert write_summary(new).decisions["e06_lower_lr"].decision == "✅ down"


def test_a_changed_design_is_not_refused_before_any_run_finished(tmp_path: Path) -> None:
    from fusion_tuner.sweeps.rounds import design_change
    from fusion_tuner.sweeps.sequential import Design

    sw = tmp_path / "sw"
    record_plan(sw.parent / "sw", design={"initial_seeds": 3, "seeds_per_round": 2, "max_seeds": 5})
    assert design_change(sw, Design(max_seeds=7)) == ""  # no finished run: nothing was judged
    from tests.helpers.sweeps import fake_run

    fake_run(sw, "baseline", 1, 1.0)
    assert "max_seeds 7 (recorded: 5)" in design_change(sw, Design(max_seeds=7))
    assert design_change(sw, Design(max_seeds=5)) == ""
