"""The Hydra callback of every multirun: record the sweep and its plan when it starts, and
refuse a sweep whose run directories would collide or whose ``base_sweep`` cannot be chained
from, before any run starts.

The summary itself is written by :func:`fusion_tuner.cli.train.main` once the launcher has returned
*or failed* (Hydra skips ``on_multirun_end`` when a job fails), so that failed and missing runs
are always listed. The CLI learns which sweeps ran from the session file it passes to this
callback (``hydra.callbacks.sweep_summary.session_file``): one JSON line per sweep started.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from fusion_tuner.sweeps.chain import ChainError, read_next_base
from fusion_tuner.sweeps.plan import check_subdir, plan_jobs, write_plan
from fusion_tuner.sweeps.rounds import record_fixed_design
from fusion_tuner.words import plural

log = logging.getLogger(__name__)


class SweepSummaryCallback(Callback):
    """Configured under ``hydra.callbacks.sweep_summary`` in ``conf/config.yaml``.

    Args:
        threshold: relative change of validation MAE that counts as down/up in the summary.
        session_file: where to append ``{"sweep_dir": ..., "threshold": ...}`` for each sweep
            this process starts (set by the CLI; None: not recorded).
    """

    def __init__(self, threshold: float = 0.02, session_file: str | None = None) -> None:
        self.threshold = threshold
        self.session_file = session_file
        self.progress: SweepProgress | None = None

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        """After each run of a sweep whose runs end in this process (the basic launcher): one
        console line with the runs done, the time elapsed and an estimate of the time left."""
        if self.progress is not None:
            log.info("%s", self.progress.job_ended())

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from fusion_tuner.search import is_search_config

        sweep_dir = Path(str(config.hydra.sweep.dir))
        self.progress = SweepProgress(None)
        if is_search_config(config.hydra):
            trials = config.hydra.sweeper.get("n_trials")
            self.progress = SweepProgress(int(trials) if trials else None, "trial")
            # an Optuna search is no grid: it names its own run directories (trial-NNNN) and
            # writes its own summary (fusion_tuner.search.search_summary), so there is no plan to write
            self._record(sweep_dir, search=True)
            return
        try:
            jobs = plan_jobs(config.hydra)
        except Exception as exc:  # private Hydra API: degrade to "found runs only", and say so
            log.warning(
                "could not expand the sweep's job list (%s); missing runs will not be listed", exc
            )
            jobs = None
        self.progress = SweepProgress(len(jobs) if jobs is not None else None)
        if jobs is not None:
            subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"])
            try:
                check_subdir(jobs, subdir)
            except ValueError as exc:
                # Hydra turns a callback's exceptions into warnings; this one must stop the sweep
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(2) from exc
        base = config.get("base_sweep") if hasattr(config, "get") else None
        if base:
            try:
                nb = read_next_base(base)
            except ChainError as exc:  # before any run starts, as for colliding directories
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(2) from exc
            log.info(
                "this sweep starts from %s: %s",
                base,
                f"its winner {nb.winner}" if nb.winner else nb.note,
            )
        self._record(sweep_dir)
        if jobs is not None:
            write_plan(sweep_dir, jobs)
            if "fusion_tuner_rounds" not in str(config.hydra.sweeper.get("_target_", "")):
                node = config.get("sweep") if hasattr(config, "get") else None
                record_fixed_design(sweep_dir, jobs, node)

    def _record(self, sweep_dir: Path, search: bool = False) -> None:
        """Create the sweep directory and record it in the session file (``search``: an Optuna
        search, which summarises itself)."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if self.session_file:
            rec = {"sweep_dir": str(sweep_dir), "threshold": self.threshold, "search": search}
            with open(self.session_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec))
                fh.write("\n")


class SweepProgress:
    """The sweep-level progress line: runs done of the total, time elapsed and the estimated
    time left (the mean time per run so far times the runs left).

    Args:
        total: the runs the sweep plans (None: unknown, the line then gives no estimate; a
            sweep that adds rounds of seeds may run more than it first planned).
        noun: what a job is called ("run", or "trial" in a search).
    """

    def __init__(self, total: int | None, noun: str = "run") -> None:
        self.total, self.noun = total, noun
        self.done = 0
        self.start = time.monotonic()

    def job_ended(self, now: float | None = None) -> str:
        """Count one more job done and return the line."""
        self.done += 1
        elapsed = (time.monotonic() if now is None else now) - self.start
        total = max(self.total, self.done) if self.total is not None else None
        line = (
            f"sweep progress: {self.done}/{plural(total, self.noun)} done"
            if total is not None
            else f"sweep progress: {plural(self.done, self.noun)} done"
        )
        line += f", {_clock(elapsed)} elapsed"
        if total is not None and total > self.done:
            left = elapsed / self.done * (total - self.done)
            line += (
                f", about {_clock(left)} remaining (estimated from the mean time per {self.noun})"
            )
        return line


def _clock(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def session_searches(session_file: Path) -> set[Path]:
    """The sweep directories of the Optuna searches recorded in a session file."""
    if not session_file.is_file():
        return set()
    lines = session_file.read_text(encoding="utf-8").splitlines()
    return {Path(r["sweep_dir"]) for r in map(json.loads, filter(None, lines)) if r.get("search")}


def read_session(session_file: Path) -> list[tuple[Path, float]]:
    """The sweeps recorded in a session file, in the order they started."""
    if not session_file.is_file():
        return []
    lines = session_file.read_text(encoding="utf-8").splitlines()
    return [
        (Path(rec["sweep_dir"]), float(rec["threshold"]))
        for rec in map(json.loads, filter(None, lines))
    ]
