"""The search loop with a scripted launcher (no training): batches of n_jobs, what each run's
metrics.json is told to the study as, failures that never stop the search, resuming what a killed
sweep left running, and the run side's pruning against a real journal file."""

from __future__ import annotations

import fcntl
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from fusion_tuner.errors import ConfigError
from fusion_tuner.rundir import RunDir
from fusion_tuner.search import trial_dir_name
from fusion_tuner.search.loop import SearchFailed, SearchLoop, read_outcome
from fusion_tuner.search.space import parse_space
from fusion_tuner.search.study import PrunerSpec, SamplerSpec, open_study

optuna.logging.set_verbosity(optuna.logging.ERROR)


def completed(value: float, **extra: Any) -> dict[str, Any]:
    return {"status": "completed", "val": {"mae": value}, "epochs_run": 2} | extra


class ScriptedLaunch:
    """A launcher whose jobs write the metrics.json that ``script(trial number, overrides)``
    returns (None: the job writes nothing)."""

    def __init__(self, sweep_dir: Path, script: Callable[[int, dict[str, str]], dict | None]):
        self.sweep_dir, self.script = sweep_dir, script
        self.batches: list[list[list[str]]] = []

    def __call__(self, batch: list[list[str]], initial_job_idx: int) -> list[None]:
        self.batches.append(batch)
        for job in batch:
            kv = dict(o.split("=", 1) for o in job)
            metrics = self.script(int(kv["trial.number"]), kv)
            if metrics is not None:
                RunDir(self.sweep_dir / kv["hydra.sweep.subdir"]).write_metrics(metrics)
        return [None] * len(batch)


def make_study(sweep_dir: Path, pruner: PrunerSpec | None = None, seed: int = 0) -> Any:
    study = open_study(sweep_dir, None, "minimize", pruner or PrunerSpec())
    study.sampler = SamplerSpec("random", seed).build(None, len(study.trials), parallel=False)
    return study


SPACE = parse_space({"regularization.graph_dropout": "interval(0.1, 0.3)"}, ["budget=quick"])


def states(study: Any) -> list[str]:
    return [t.state.name for t in study.trials]


def test_trials_run_in_batches_of_n_jobs_each_in_its_own_directory(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(float(kv[SPACE_KEY])))
    SearchLoop(study, SPACE, tmp_path, launch, n_trials=5, n_jobs=2).run()
    assert [len(b) for b in launch.batches] == [2, 2, 1]
    assert states(study) == ["COMPLETE"] * 5
    job = launch.batches[0][1]
    assert job[0] == "budget=quick" and job[1].startswith("regularization.graph_dropout=0.")
    assert job[2:] == [
        "trial.number=1",
        f"trial.study={study.study_name}",
        f"trial.storage={(tmp_path / 'optuna-journal.log').resolve()}",
        "hydra.sweep.subdir=trial-0001",
    ]
    # the value told is the run's validation MAE; the sampled value is what the run got
    for t in study.trials:
        assert t.value == pytest.approx(t.params[SPACE_KEY], rel=1e-5)


SPACE_KEY = "regularization.graph_dropout"


def test_pruned_failed_nan_and_missing_runs_are_told_and_the_search_goes_on(
    tmp_path: Path,
) -> None:
    script = {
        0: completed(1.0),
        1: completed(5.0, stop_reason="pruned", epochs_run=1),
        2: {"status": "failed", "error": "Traceback ...\nValueError: bad value"},
        3: completed(math.nan),
        4: None,  # the job never wrote a metrics.json
        5: {"status": "running"},  # the process died without a word
        6: completed(0.5),
    }
    study = make_study(tmp_path)
    SearchLoop(
        study, SPACE, tmp_path, ScriptedLaunch(tmp_path, lambda n, kv: script[n]), 7, 1
    ).run()
    assert states(study) == ["COMPLETE", "PRUNED", "FAIL", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    notes = [t.user_attrs.get("note", "") for t in study.trials]
    assert notes[1] == "pruned at epoch 1"
    assert notes[2] == "ValueError: bad value"
    assert "nan" in notes[3] and "never started" in notes[4] and "without recording" in notes[5]
    assert study.best_trial.number == 6


def _old_trial_record(number: int, value: float) -> dict[str, Any]:
    """What a trial of an earlier search (another study, other parameters) left behind."""
    record = {"number": number, "study": "old-study", "params": {SPACE_KEY: 0.123}}
    return completed(value, trial=record, seed=42)


def test_a_refused_trial_never_records_the_result_its_directory_holds(tmp_path: Path) -> None:
    for n in (0, 1):  # an earlier search's completed runs
        RunDir(tmp_path / trial_dir_name(n)).write_metrics(_old_trial_record(n, 4.394))

    def script(n: int, kv: dict) -> None:
        files = RunDir(tmp_path / kv["hydra.sweep.subdir"])
        if n == 0:  # the run is refused (another config holds the directory): nothing written
            files.record_refusal(list(kv), "trial-0000 holds a completed run of a different config")
        # trial 1's run is not refused but its record is another trial's (an older directory)

    study = make_study(tmp_path)
    SearchLoop(study, SPACE, tmp_path, ScriptedLaunch(tmp_path, script), 2, 1).run()
    assert states(study) == ["FAIL", "FAIL"]
    assert all(t.value is None for t in study.trials)
    notes = [t.user_attrs["note"] for t in study.trials]
    assert (
        "its run was refused (trial-0000 holds a completed run of a different config)" in notes[0]
    )
    assert "holds the result of trial 1 of study 'old-study' with other parameters" in notes[1]


def test_a_completed_run_of_this_trials_parameters_is_its_result(tmp_path: Path) -> None:
    def script(n: int, kv: dict) -> dict:
        params = {SPACE_KEY: float(kv[SPACE_KEY])}
        return completed(0.5, trial={"number": n, "study": "any", "params": params}, seed=42)

    study = make_study(tmp_path)
    SearchLoop(study, SPACE, tmp_path, ScriptedLaunch(tmp_path, script), 2, 1).run()
    assert states(study) == ["COMPLETE", "COMPLETE"]


def test_a_rerun_does_not_adopt_another_trials_result(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    study.ask(SPACE.distributions)  # left running by a killed sweep; its directory is older
    RunDir(tmp_path / "trial-0000").write_metrics(_old_trial_record(0, 4.394))
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(0.9))
    SearchLoop(make_study(tmp_path), SPACE, tmp_path, launch, n_trials=1, n_jobs=1).run()
    trial = make_study(tmp_path).trials[0]
    assert (
        trial.state == TrialState.FAIL and "holds the result of trial 0" in trial.user_attrs["note"]
    )


def test_an_interrupted_run_stays_unfinished_for_a_rerun(tmp_path: Path) -> None:
    def script(n: int, kv: dict) -> dict:
        return (
            {"status": "interrupted", "reason": "interrupted by SIGTERM"}
            if n == 1
            else completed(1.0)
        )

    study = make_study(tmp_path)
    loop = SearchLoop(study, SPACE, tmp_path, ScriptedLaunch(tmp_path, script), 3, 1)
    loop.run()
    assert states(study) == ["COMPLETE", "RUNNING", "COMPLETE"]
    assert loop.left_unfinished == {1}


def test_a_search_whose_first_trials_all_fail_stops(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    launch = ScriptedLaunch(tmp_path, lambda n, kv: {"status": "failed", "error": "DataError: x"})
    with pytest.raises(SearchFailed, match="first 3 trials of this search all failed") as err:
        SearchLoop(study, SPACE, tmp_path, launch, n_trials=20, n_jobs=1).run()
    assert "DataError: x" in str(err.value)
    assert states(study) == ["FAIL"] * 3


def test_a_rerun_settles_what_a_killed_sweep_left_and_never_reruns_completed_trials(
    tmp_path: Path,
) -> None:
    study = make_study(tmp_path)
    for _ in range(2):
        t = study.ask(SPACE.distributions)
        study.tell(t, 1.0)
    ended_unwatched = study.ask(SPACE.distributions)  # its run completed after the sweep died
    RunDir(tmp_path / "trial-0002").write_metrics(completed(0.7))
    killed = study.ask(SPACE.distributions)  # its run was killed with the sweep
    RunDir(tmp_path / "trial-0003").write_metrics({"status": "running"})

    study2 = make_study(tmp_path, seed=1)  # the rerun: a new process loads the study
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(0.9))
    SearchLoop(study2, SPACE, tmp_path, launch, n_trials=6, n_jobs=1).run()
    launched = [int(dict(o.split("=", 1) for o in b[0])["trial.number"]) for b in launch.batches]
    assert launched == [3, 4, 5]  # the killed trial again, then new ones; never 0, 1 or 2
    resumed = dict(o.split("=", 1) for o in launch.batches[0][0])
    assert float(resumed[SPACE_KEY]) == pytest.approx(killed.params[SPACE_KEY], rel=1e-5)
    assert states(study2) == ["COMPLETE"] * 6
    assert study2.trials[ended_unwatched.number].value == 0.7
    assert len({t.number for t in study2.trials}) == 6


def test_a_rerun_waits_for_a_trial_another_process_still_trains(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    study.ask(SPACE.distributions)
    files = RunDir(tmp_path / "trial-0000")
    files.write_metrics({"status": "running"})
    with open(files.lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        def finish_later() -> None:
            time.sleep(0.5)
            files.write_metrics(completed(0.8))
            fcntl.flock(held, fcntl.LOCK_UN)

        threading.Thread(target=finish_later).start()
        launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(1.0))
        SearchLoop(study, SPACE, tmp_path, launch, n_trials=1, n_jobs=1, poll_s=0.05).run()
    assert launch.batches == []  # waited for it instead of launching it a second time
    assert study.trials[0].value == 0.8


def test_baseline_trials_carry_their_seed_into_the_overrides(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    for seed in (42, 43):
        study.enqueue_trial({SPACE_KEY: 0.15}, user_attrs={"baseline": True, "random_seed": seed})
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(1.0))
    SearchLoop(study, SPACE, tmp_path, launch, n_trials=3, n_jobs=3).run()
    jobs = [dict(o.split("=", 1) for o in job) for job in launch.batches[0]]
    assert [j.get("random_seed") for j in jobs] == ["42", "43", None]
    assert [j[SPACE_KEY] for j in jobs[:2]] == ["0.15", "0.15"]


def test_read_outcome_of_a_pruned_run(tmp_path: Path) -> None:
    RunDir(tmp_path).write_metrics(completed(3.0, stop_reason="pruned", epochs_run=4))
    out = read_outcome(tmp_path)
    assert (out.kind, out.value, out.note) == ("pruned", 3.0, "pruned at epoch 4")


# ------------------------------------------------------------------------- the run's side
def test_a_run_in_another_process_reports_and_is_pruned_by_the_study_pruner(
    tmp_path: Path,
) -> None:
    from fusion_tuner.config import TrialConfig
    from fusion_tuner.search.pruning import TrialReporter
    from fusion_tuner.training.epoch import EpochRecord

    study = make_study(tmp_path, PrunerSpec("median", n_startup_trials=1, n_warmup_steps=0))
    good = study.ask(SPACE.distributions)
    for epoch, v in ((1, 1.0), (2, 0.8)):
        good.report(v, epoch)
    study.tell(good, 0.8)
    bad = study.ask(SPACE.distributions)
    cfg = TrialConfig(bad.number, study.study_name, str(tmp_path / "optuna-journal.log"))
    reporter = TrialReporter.from_config(cfg)  # rebuilt from the journal, as a run does
    assert reporter is not None
    assert reporter.params == {SPACE_KEY: pytest.approx(bad.params[SPACE_KEY], rel=1e-5)}

    def epoch(n: int, val: float) -> EpochRecord:
        return EpochRecord(n, 1.0, 1.0, 1.0, 1.0, val, 1e-3, math.nan, 0.1, 1.0, 0.0, val, 1.0)

    assert reporter(epoch(1, 0.9)) is None  # better than the median at epoch 1
    assert reporter(epoch(2, 50.0)) == "pruned"
    assert study.trials[bad.number].intermediate_values == {1: 0.9, 2: 50.0}
    assert reporter.record()["pruned_at_epoch"] == 2
    study.tell(bad.number, state=TrialState.PRUNED)
    # a trial the sweeper already ended: the run goes on without reporting
    assert reporter(epoch(3, 1.0)) is None and reporter.active is False
    assert TrialReporter.from_config(TrialConfig()) is None


@pytest.mark.parametrize("warmup, first", [(0, 1), (1, 1), (4, 4)])
def test_the_median_pruner_can_stop_a_trial_from_epoch_n_warmup_steps(
    tmp_path: Path, warmup: int, first: int
) -> None:
    """Runs report at their 1-based epoch: a trial can be pruned from epoch
    max(1, n_warmup_steps) on, as conf/hydra/sweeper/optuna.yaml says."""
    study = make_study(tmp_path, PrunerSpec("median", n_startup_trials=1, n_warmup_steps=warmup))
    good = study.ask(SPACE.distributions)
    for epoch in range(1, 6):
        good.report(1.0, epoch)
    study.tell(good, 1.0)
    bad = study.ask(SPACE.distributions)
    prunable = []
    for epoch in range(1, 6):
        bad.report(50.0, epoch)
        prunable.append(bad.should_prune())
    assert prunable == [epoch >= first for epoch in range(1, 6)]


def test_a_launcher_error_stops_the_search_and_leaves_unstarted_trials_for_a_rerun(
    tmp_path: Path,
) -> None:
    study = make_study(tmp_path)

    def failing_launch(batch: list[list[str]], idx: int) -> list[None]:
        RunDir(tmp_path / "trial-0000").write_metrics(completed(1.0))  # one job ran
        raise RuntimeError("could not record the job array")  # e.g. after submitting

    with pytest.raises(RuntimeError, match="could not record the job array"):
        SearchLoop(study, SPACE, tmp_path, failing_launch, n_trials=4, n_jobs=2).run()
    assert states(study) == ["COMPLETE", "RUNNING"]  # trial 1 is not called failed
    RunDir(tmp_path / "trial-0001").write_metrics(completed(0.9))  # its queued job ran later
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(0.8))
    SearchLoop(make_study(tmp_path), SPACE, tmp_path, launch, n_trials=4, n_jobs=2).run()
    assert states(study) == ["COMPLETE"] * 4
    assert study.trials[1].value == 0.9
    assert [len(b) for b in launch.batches] == [2]


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "grid"])
def test_every_sampler_runs_a_small_search_with_distinct_points(tmp_path: Path, name: str) -> None:
    space = parse_space({SPACE_KEY: "range(0.1, 0.35, 0.05)", "batch.batch_size": "choice(32, 64)"})
    study = open_study(tmp_path, None, "minimize", PrunerSpec())
    grid = space.grid() if name == "grid" else None
    study.sampler = SamplerSpec(name, 0, n_startup_trials=2).build(grid, 0, parallel=True)
    launch = ScriptedLaunch(tmp_path, lambda n, kv: completed(float(kv[SPACE_KEY])))
    n_trials = 10 if name == "grid" else 6  # the grid: all its 5 x 2 points, then it is done
    SearchLoop(study, space, tmp_path, launch, n_trials=n_trials, n_jobs=2).run()
    assert states(study) == ["COMPLETE"] * n_trials
    points = {tuple(sorted(t.params.items())) for t in study.trials}
    if name == "grid":
        assert len(points) == 10
    assert all(0.1 <= t.params[SPACE_KEY] <= 0.3 + 1e-9 for t in study.trials)


def test_the_sweeper_and_the_loop_agree_on_the_trial_keys() -> None:
    from fusion_tuner.search import loop
    from hydra_plugins.fusion_tuner_optuna import sweeper

    assert sweeper.TRIAL_KEYS == loop.TRIAL_KEYS
    assert loop._consecutive([3, 4, 7, 9, 10]) == [(0, 2), (2, 3), (3, 5)]
    assert loop._consecutive([]) == []


def _journal_with_trials(sweep_dir: Path, n: int) -> Path:
    study = make_study(sweep_dir)
    for i in range(n):
        t = study.ask(SPACE.distributions)
        study.tell(t, float(i))
    return sweep_dir / "optuna-journal.log"


def test_a_torn_last_journal_line_is_cut_off_with_a_copy_kept(tmp_path: Path) -> None:
    journal = _journal_with_trials(tmp_path, 3)
    original = journal.read_bytes()
    torn = original[:-40]  # what a kill or a full disk mid-append leaves
    journal.write_bytes(torn)
    study = make_study(tmp_path)  # repaired, then loaded
    kept = torn[: torn.rfind(b"\n") + 1]
    assert journal.read_bytes().startswith(kept)  # the torn piece is gone; the rest as it was
    assert all(json.loads(line) for line in journal.read_bytes().splitlines())
    (backup,) = tmp_path.glob("optuna-journal.log.torn-*")
    assert backup.read_bytes() == torn
    assert states(study)[:2] == ["COMPLETE", "COMPLETE"]
    t = study.ask(SPACE.distributions)  # appending works, and so does every later load
    study.tell(t, 9.0)
    again = make_study(tmp_path)
    assert again.trials[-1].value == 9.0 and len(again.trials) == len(study.trials)


def test_a_corrupt_journal_line_is_named(tmp_path: Path) -> None:
    journal = _journal_with_trials(tmp_path, 2)
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:10] + b"#garbage#" + lines[2][10:]
    journal.write_bytes(b"\n".join(lines))
    with pytest.raises(ConfigError, match=rf"{journal}, line 3 of \d+: not a JSON record"):
        make_study(tmp_path)
    assert not list(tmp_path.glob("optuna-journal.log.torn-*"))


def test_a_run_without_recorded_parameters_is_checked_by_its_trial_number(tmp_path: Path) -> None:
    """An app whose metrics.json records no trial.params (the sweeper's contract allows it): its
    run is this trial's when the trial numbers match, another trial's otherwise."""
    from fusion_tuner.search.loop import not_this_trials

    study = make_study(tmp_path)
    trial = study.ask(SPACE.distributions)
    mine = {"status": "completed", "val": {"mae": 1.0}, "trial": {"number": trial.number}}
    other = mine | {"trial": {"number": trial.number + 1}}
    frozen = study.trials[-1]
    assert not_this_trials(tmp_path, mine, frozen) == ""
    assert "holds the result of trial 1" in not_this_trials(tmp_path, other, frozen)
