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
