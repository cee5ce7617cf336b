"""The search loop: ask the study for up to ``n_jobs`` trials, launch them as one batch through a
Hydra launcher, tell the study each result; until ``n_trials`` trials have ended.

Each trial's result is read from its run directory's ``metrics.json`` (written by the run in
whatever process or node ran it):

==========================================  ===============================================
the run's ``metrics.json``                  told to the study
==========================================  ===============================================
completed, finite validation MAE            COMPLETE with that value
completed with ``stop_reason: pruned``      PRUNED
failed, or a NaN / infinite validation MAE  FAIL (the error is kept as the trial's ``error``)
interrupted (SIGTERM, SIGINT)               left running: a rerun resumes it from ``last.pt``
still ``running`` after its job ended       FAIL (the process died without a word: killed?)
the run was refused (another config holds  FAIL (``.refused/trial-NNNN.json``: the files are
its directory), or its ``trial`` record    another run's, never this trial's result)
has other parameters or seed
no ``metrics.json`` after its job ended     FAIL (the run never started)
no ``metrics.json``, the launcher raised    left running, and the search stops (re-raises):
                                            its job may still be queued; a rerun settles it
==========================================  ===============================================

A failed trial never stops the search. Rerunning the command into the same sweep directory
(:meth:`SearchLoop.run`) first settles the trials an earlier, killed sweep left running: one
whose run has since ended is told its result; one whose run is still alive (another process
holds its run directory) is waited for; any other is launched again with its own parameters into
its own directory, where the run resumes from ``last.pt``. Completed trials are never rerun.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion_tuner.io import lock_owner
from fusion_tuner.rerun import resume_command
from fusion_tuner.rundir import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunDir
from fusion_tuner.search import trial_dir_name, trial_run_dir
from fusion_tuner.search.pruning import PRUNED
from fusion_tuner.search.space import SearchSpace, render_value

log = logging.getLogger(__name__)

# (job overrides, index of the first job) -> the launcher's results, one per job
Launch = Callable[[list[list[str]], int], Sequence[Any]]
# (a job's overrides, its job number) -> its run directory relative to the sweep directory
Subdir = Callable[[list[str], int], str]
# the sweeper's own keys of a trial's job (kept out of hydra.job.override_dirname)
TRIAL_KEYS = ("trial.number", "trial.study", "trial.storage")

# kinds of Outcome
COMPLETE, PRUNED_KIND, FAIL, INTERRUPTED_KIND, DIED, NOT_STARTED = (
    "complete",
    "pruned",
    "fail",
    "interrupted",
    "died",
    "not started",
)
FINAL = (COMPLETE, PRUNED_KIND, FAIL)


@dataclass(frozen=True)
class Outcome:
    """What a trial's run directory says about it."""

    kind: str
    value: float | None = None
    note: str = ""


def read_outcome(run_dir: Path, trial: Any = None) -> Outcome:
    """The outcome of the run in ``run_dir`` from its ``metrics.json``.

    With the Optuna ``trial`` the run was launched for, a result is this trial's only if the
    last attempt at the run was not refused (see :class:`~fusion_tuner.errors.RunRefused`) and
    the run recorded this trial's parameters (and seed); otherwise the trial fails, saying why.
    """
    m = RunDir(run_dir).read_metrics()
    status = m.get("status")
    foreign = not_this_trials(run_dir, m, trial) if trial is not None else ""
    if foreign:
        return Outcome(FAIL, None, foreign)
    if status == COMPLETED:
        value = float(m.get("val", {}).get("mae", math.nan))
        if m.get("stop_reason") == PRUNED:
            return Outcome(PRUNED_KIND, value, f"pruned at epoch {m.get('epochs_run')}")
        if not math.isfinite(value):
            return Outcome(FAIL, None, f"validation MAE is {value} (the run diverged)")
        return Outcome(COMPLETE, value)
    if status == FAILED:
        return Outcome(FAIL, None, str(m.get("error") or "failed").strip().splitlines()[-1])
    if status == INTERRUPTED:
        return Outcome(INTERRUPTED_KIND, None, str(m.get("reason", "interrupted")))
    if status == RUNNING:
        return Outcome(
            DIED, None, "the run ended without recording a result (killed? out of memory?)"
        )
    return Outcome(NOT_STARTED, None, "the run never started (no metrics.json)")


def not_this_trials(run_dir: Path, metrics: dict[str, Any], trial: Any) -> str:
    """Why the run in ``run_dir`` (its ``metrics``) holds no result of ``trial``: its last
    attempt was refused, or it completed with another trial's parameters or seed (an app whose
    ``metrics.json`` records no ``trial.params``: another trial's number); "" when its files
    are this trial's."""
    from fusion_tuner.search.space import config_values

    refusal = RunDir(run_dir).read_refusal()
    if refusal is not None:
        reason = str(refusal.get("reason") or "refused").strip().splitlines()[0]
        return (
            f"its run was refused ({reason}): {Path(run_dir).name} holds another run, not this "
            "trial's result; start a new search in a new hydra.sweep.dir"
        )
    record = metrics.get("trial")
    if metrics.get("status") != COMPLETED or not isinstance(record, dict):
        return ""
    mine = config_values(trial.params, trial.distributions)
    seed = trial.user_attrs.get("random_seed")
    if "params" not in record:  # an app that records no parameters: its trial number must match
        if record.get("number") == trial.number:
            return ""
    elif record.get("params") == mine and (seed is None or metrics.get("seed") == seed):
        return ""
    return (
        f"its run directory holds the result of trial {record.get('number')} of study "
        f"{record.get('study')!r} with other parameters ({record.get('params')}, seed "
        f"{metrics.get('seed')}), not this trial's ({mine}, seed {seed}); start a new search "
        "in a new hydra.sweep.dir"
    )


def lock_holder(run_dir: Path) -> str | None:
    """Who trains in ``run_dir`` now (the text of its ``.lock``), or None when no live process
    holds it."""
    return lock_owner(RunDir(run_dir).lock)


class SearchLoop:
    """Runs a study's trials through a launcher (see the module docstring).

    Args:
        study: the ``optuna.Study`` (its sampler already set).
        space: what to sample and the overrides every trial gets.
        sweep_dir: the search's sweep directory (trial run directories go inside).
        launch: runs one batch of jobs and returns when all of them ended.
        n_trials: trials the study should hold when the search ends (earlier runs count).
        n_jobs: trials in flight at once (one batch).
        poll_s: seconds between checks on a trial another process still trains.
        subdir: the run directory of a job (the command's ``hydra.sweep.subdir``, resolved);
            None: ``trial-NNNN``, which the loop then sets as each job's subdir.
        job_overrides: overrides added to every job (after the trial's own).

    Each trial's job number (``hydra.job.num``) is its trial number, so a resumed search
    launches a trial with the same number, and into the same directory, as before.
    """

    def __init__(
        self,
        study: Any,
        space: SearchSpace,
        sweep_dir: Path,
        launch: Launch,
        n_trials: int,
        n_jobs: int,
        poll_s: float = 10.0,
        subdir: Subdir | None = None,
        job_overrides: Sequence[str] = (),
    ) -> None:
        from fusion_tuner.search.study import journal_path

        self.study, self.space, self.sweep_dir, self.launch = study, space, Path(sweep_dir), launch
        self.n_trials, self.n_jobs, self.poll_s = n_trials, n_jobs, poll_s
        self.subdir, self.job_overrides = subdir, list(job_overrides)
        self.journal = journal_path(sweep_dir)
        self.run_dirs: dict[int, str] = {}  # trial number -> run directory, set by _place
        # trials whose run was interrupted in this process: unfinished, resumed by a rerun
        self.left_unfinished: set[int] = set()
        # outcomes told in this process, in order (kind per trial)
        self.told: list[str] = []

    # ------------------------------------------------------------------------------ loop
    def run(self) -> None:
        """Settle what an earlier sweep left running, then ask, launch and tell until
        ``n_trials`` trials have ended.

        Raises:
            SearchFailed: the first trials of this process all failed and none of the study
                ever completed (a broken setting; the search stops instead of burning trials).
        """
        self._adopt_unfinished()
        while (room := self._room()) > 0:
            trials = [self.study.ask(self.space.distributions) for _ in range(room)]
            self._run_batch(trials)
            self._check_hopeless()

    def finished(self) -> list[Any]:
        """The study's trials that ended (completed, pruned or failed)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return self.study.get_trials(deepcopy=False, states=states)

    def _room(self) -> int:
        remaining = self.n_trials - len(self.finished()) - len(self.left_unfinished)
        return max(0, min(self.n_jobs, remaining))

    def _adopt_unfinished(self) -> None:
        from optuna.trial import TrialState

        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        relaunch = []
        for trial in running:
            run_dir = self.run_dir(trial)
            self._wait_while_trained_elsewhere(trial.number, run_dir)
            outcome = read_outcome(run_dir, trial)
            if outcome.kind in FINAL:
                log.info("trial %d ended while no sweep watched it", trial.number)
                self._tell(trial, outcome)
            else:
                relaunch.append(trial)
        if relaunch:
            log.info(
                "resuming %d trial(s) an earlier sweep left unfinished: %s",
                len(relaunch),
                ", ".join(str(t.number) for t in relaunch),
            )
        for start in range(0, len(relaunch), self.n_jobs):
            self._run_batch(relaunch[start : start + self.n_jobs])

    def _wait_while_trained_elsewhere(self, number: int, run_dir: Path) -> None:
        holder = lock_holder(run_dir)
        if holder is None:
            return
        log.warning("trial %d is still trained by %s; waiting for it to end", number, holder)
        while lock_holder(run_dir) is not None:
            time.sleep(self.poll_s)

    def run_dir(self, trial: Any) -> Path:
        """The run directory of ``trial``'s job."""
        return self.sweep_dir / self.run_dirs.get(trial.number, trial_run_dir(trial))

    # ----------------------------------------------------------------------------- batch
    def trial_overrides(self, trial: Any) -> list[str]:
        """The overrides of a trial's job: the search's fixed ones, its sampled values, its
        seed (baseline trials), its place in the study and (without ``subdir``) its run
        directory."""
        out = self.space.overrides(trial.params)
        seed = trial.user_attrs.get("random_seed")
        if seed is not None:
            out.append(f"random_seed={seed}")
        out += [
            f"trial.number={trial.number}",
            f"trial.study={render_value(self.study.study_name)}",
            f"trial.storage={render_value(str(self.journal))}",
            *self.job_overrides,
        ]
        if self.subdir is None:
            out.append(f"hydra.sweep.subdir={trial_dir_name(trial.number)}")
        return last_per_key(out)

    def _place(self, trials: list[Any], batch: list[list[str]]) -> list[int]:
        """Record each trial's run directory (``user_attrs["run_dir"]``); the indices of the
        trials that can run: one whose directory is another trial's fails instead."""
        from optuna.trial import Trial

        if self.subdir is None:
            return list(range(len(trials)))
        taken = {
            trial_run_dir(t): t.number
            for t in self.study.get_trials(deepcopy=False)
            if "run_dir" in t.user_attrs
        }
        ok = []
        for i, (trial, overrides) in enumerate(zip(trials, batch, strict=True)):
            run_dir = trial.user_attrs.get("run_dir") or self.subdir(overrides, trial.number)
            owner = taken.get(run_dir, trial.number)
            if any(len(part.encode()) > 255 for part in Path(run_dir).parts):
                self._tell(
                    trial,
                    Outcome(FAIL, None, f"its run directory is too long a name: {run_dir[:80]}..."),
                )
                continue
            if owner != trial.number:
                self._tell(
                    trial,
                    Outcome(
                        FAIL,
                        None,
                        f"its run directory {run_dir} is trial {owner}'s: hydra.sweep.subdir must "
                        "name a directory of its own for each trial (add ${hydra.job.num})",
                    ),
                )
                continue
            Trial(self.study, trial._trial_id).set_user_attr("run_dir", run_dir)
            self.run_dirs[trial.number] = run_dir
            taken[run_dir] = trial.number
            ok.append(i)
        return ok

    def _run_batch(self, trials: list[Any]) -> None:
        batch = [self.trial_overrides(t) for t in trials]
        keep = self._place(trials, batch)
        trials, batch = [trials[i] for i in keep], [batch[i] for i in keep]
        if not trials:
            return
        for t in trials:
            sampled = self.space.overrides(t.params)[len(self.space.fixed) :]
            tag = " (baseline)" if t.user_attrs.get("baseline") else ""
            log.info("trial %d%s: %s", t.number, tag, " ".join(sampled))
        results: Sequence[Any] = []
        launcher_error: Exception | None = None
        try:
            # job number = trial number: one launch per run of consecutive trial numbers
            for start, end in _consecutive([t.number for t in trials]):
                results = [*results, *self.launch(batch[start:end], trials[start].number)]
        except Exception as exc:  # a job that crashed, or the launcher itself: see below
            launcher_error = exc
            log.error("the launcher reported: %s", _first_line(exc))
        never_started = []
        for i, trial in enumerate(trials):
            run_dir = self.run_dir(trial)
            self._wait_while_trained_elsewhere(trial.number, run_dir)
            outcome = read_outcome(run_dir, trial)
            if outcome.kind == NOT_STARTED and launcher_error is not None:
                # its job may still be queued (or was cancelled): not a result of the trial
                never_started.append(trial.number)
                outcome = Outcome(INTERRUPTED_KIND, None, "its job did not start")
            if outcome.kind == INTERRUPTED_KIND:
                self.left_unfinished.add(trial.number)
                log.warning(
                    "trial %d: %s; it stays unfinished; to resume it, rerun %s",
                    trial.number,
                    outcome.note,
                    resume_command(run_dir, sweep_dir=Path(self.sweep_dir)),
                )
                continue
            if outcome.kind not in FINAL:
                error = _first_line(launcher_error) if launcher_error else ""
                error = error or _job_error(results[i] if i < len(results) else None)
                outcome = Outcome(FAIL, None, outcome.note + (f"; {error}" if error else ""))
            self._tell(trial, outcome)
        if never_started:
            # a launcher that fails before its jobs run would fail every batch the same way
            log.error(
                "the search stops: trial(s) %s did not start; fix the launcher's error and rerun "
                "%s to continue",
                ", ".join(map(str, never_started)),
                resume_command(Path(self.sweep_dir), sweep_dir=Path(self.sweep_dir)),
            )
            assert launcher_error is not None
            raise launcher_error

    def _tell(self, trial: Any, outcome: Outcome) -> None:
        from optuna.trial import Trial, TrialState

        if outcome.note:
            # FrozenTrial and Trial both carry their storage id as _trial_id
            Trial(self.study, trial._trial_id).set_user_attr("note", outcome.note)
        if outcome.kind == COMPLETE:
            self.study.tell(trial.number, outcome.value)
            log.info("trial %d: completed, validation MAE %.4g", trial.number, outcome.value)
        elif outcome.kind == PRUNED_KIND:
            self.study.tell(trial.number, state=TrialState.PRUNED)
            log.info("trial %d: %s", trial.number, outcome.note)
        else:
            self.study.tell(trial.number, state=TrialState.FAIL)
            log.warning("trial %d: failed: %s; the search goes on", trial.number, outcome.note)
        self.told.append(outcome.kind)

    def _check_hopeless(self) -> None:
        from optuna.trial import TrialState

        first = max(3, self.n_jobs)
        if len(self.told) < first or any(k != FAIL for k in self.told):
            return
        ended = self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        if ended:
            return
        last = self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))[-1]
        raise SearchFailed(
            f"the first {len(self.told)} trials of this search all failed (the last: "
            f"{last.user_attrs.get('note', 'see its train.log')}); fix the cause and rerun the "
            f"same command with hydra.sweep.dir={self.sweep_dir} to continue the search"
        )


class SearchFailed(RuntimeError):
    """Every trial so far failed; going on would only burn more trials."""


def _consecutive(numbers: list[int]) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges of the runs of consecutive numbers: [3, 4, 7] -> (0, 2),
    (2, 3)."""
    out, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            out.append((start, i))
            start = i
    return out


def last_per_key(overrides: list[str]) -> list[str]:
    """Keep the last override of each key (``+key``/``key`` alike), in first-seen order."""
    keyed: dict[str, str] = {}
    for o in overrides:
        key = o.partition("=")[0].lstrip("+~")
        keyed.pop(key, None)
        keyed[key] = o
    return list(keyed.values())


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]


def _job_error(result: Any) -> str:
    """The error of a launcher's ``JobReturn`` ("" when it returned normally)."""
    if result is None:
        return ""
    try:
        result.return_value  # noqa: B018 - raises the job's exception when it failed
    except Exception as exc:
        return _first_line(exc)
    return ""
