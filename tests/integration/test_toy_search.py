"""The Optuna sweeper (``hydra/sweeper=fusion_optuna``) driving a task that is not ours: the toy
app in ``tests/assets/toy_app`` (the sphere function x^2 + y^2, as Hydra's own Optuna sweeper
example), which follows the sweeper's contract (README, "The sweeper's contract"). Each trial
runs in-process through Hydra's basic launcher, so a search of 20 trials takes seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.toy import study, toy

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def states(sweep_dir: Path) -> dict[int, str]:
    return {t.number: t.state.name for t in study(sweep_dir).trials}


def test_tpe_finds_the_sphere_minimum_as_hydras_own_example(tmp_path: Path) -> None:
    """hydra-optuna-sweeper's example: TPE, seed 123, 20 trials, x in range(-5.5,5.5,0.5),
    y in choice(-5,0,5); its test asks for a best value <= 2.27."""
    sweep_dir = tmp_path / "sphere"
    out = toy(sweep_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    s = study(sweep_dir)
    assert states(sweep_dir) == dict.fromkeys(range(20), "COMPLETE")
    assert s.best_value <= 2.27
    assert s.best_value == s.best_params["x"] ** 2 + s.best_params["y"] ** 2
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == [
        f"trial-{n:04d}" for n in range(20)
    ]
    for t in s.trials:  # each run got its own trial's keys and wrote its own result
        m = json.loads((sweep_dir / f"trial-{t.number:04d}" / "metrics.json").read_text())
        assert m["trial"] == {"number": t.number, "study": s.study_name, "params": t.params}
        assert m["val"]["mae"] == t.value
    assert "will fail" not in out.stderr + out.stdout  # no rule warnings for a foreign app
    # the same seed draws the same trials again
    again = toy(tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [t.params for t in study(tmp_path / "again").trials] == [t.params for t in s.trials]


def test_a_failed_run_is_told_as_failed_and_the_search_goes_on(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "fails"
    out = toy(
        sweep_dir,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler=grid",
        "x=choice(1,2)",
        "y=choice(-1,0)",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trials = study(sweep_dir).trials
    assert {(t.params["x"], t.params["y"]): t.state.name for t in trials} == {
        (1, -1): "FAIL",
        (2, -1): "FAIL",
        (1, 0): "COMPLETE",
        (2, 0): "COMPLETE",
    }
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert all(t.user_attrs["note"] == "ValueError: y=-1 is refused" for t in failed)
    assert sorted(t.value for t in trials if t.value is not None) == [1.0, 4.0]


def test_subdir_with_the_job_number_names_each_trials_directory_also_on_resume(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "num"
    first = toy(sweep_dir, "hydra.sweeper.n_trials=2", "hydra.sweep.subdir=t_${hydra.job.num}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["t_0", "t_1"]
    record = json.loads((sweep_dir / "search.json").read_text())
    assert "hydra.sweep.subdir=t_${hydra.job.num}" in record["command_overrides"]
    # a rerun continues the study: trials 2 and 3 are jobs 2 and 3, not 0 and 1 again
    more = toy(sweep_dir, "hydra.sweeper.n_trials=4", "hydra.sweep.subdir=t_${hydra.job.num}")
    assert more.returncode == 0, more.stderr[-3000:]
    assert states(sweep_dir) == dict.fromkeys(range(4), "COMPLETE")
    for t in study(sweep_dir).trials:
        assert t.user_attrs["run_dir"] == f"t_{t.number}"
        m = json.loads((sweep_dir / f"t_{t.number}" / "metrics.json").read_text())
        assert m["trial"]["number"] == t.number and m["val"]["mae"] == t.value


def test_subdir_with_override_dirname_leaves_out_the_sweepers_own_keys(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "named"
    out = toy(
        sweep_dir,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler=grid",
        "x=choice(1,2,3)",
        "y=choice(0)",
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    dirs = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert dirs == ["x=1,y=0", "x=2,y=0", "x=3,y=0"]
    for t in study(sweep_dir).trials:
        assert t.state.name == "COMPLETE"
        assert (
            t.value
            == json.loads((sweep_dir / t.user_attrs["run_dir"] / "metrics.json").read_text())[
                "val"
            ]["mae"]
        )


def test_two_trials_in_one_directory_the_second_fails_instead(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "same"
    out = toy(sweep_dir, "hydra.sweeper.n_trials=2", "hydra.sweep.subdir=same")
    assert out.returncode == 0, out.stderr[-3000:]
    assert states(sweep_dir) == {0: "COMPLETE", 1: "FAIL"}
    note = study(sweep_dir).trials[1].user_attrs["note"]
    assert note.startswith("its run directory same is trial 0's")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["~trial"], "trial.number: not in the config"),
        (
            ["~random_seed", "hydra.sweeper.baseline_runs=1"],
            "random_seed: not in the config; hydra.sweeper.baseline_runs=1",
        ),
        (["hydra.sweep.subdir=t_${hydra.job.id}"], "hydra.sweep.subdir=t_${hydra.job.id}: cannot"),
        (["hydra.sweep.subdir=/abs"], "not a folder inside the sweep dir"),
    ],
)
def test_what_the_sweeper_cannot_work_with_is_refused_before_anything_runs(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    sweep_dir = tmp_path / "refused"
    out = toy(sweep_dir, "hydra.sweeper.n_trials=2", *overrides)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "error: the search cannot start" in out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    left = sorted(p.name for p in sweep_dir.iterdir()) if sweep_dir.exists() else []
    assert "optuna-journal.log" not in left and "search.json" not in left
    assert not [p for p in left if p.startswith(("trial-", "t_"))]
