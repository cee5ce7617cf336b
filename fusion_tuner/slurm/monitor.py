"""Watch a sweep's SLURM job array until it ends: progress lines (and a bar on a terminal), each
pending reason explained once, and cancellation when a reason can never clear.

A sweep whose runs hold a never-clearing reason (:mod:`fusion_tuner.slurm.reasons`) on two polls
in a row is cancelled (``scancel``) and fails, unless ``keep_waiting`` is set.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from fusion_tuner.slurm.cluster import (
    ClusterInfo,
    Runner,
    SchedulerUnavailable,
    current_user,
    gather,
)
from fusion_tuner.slurm.preflight import KEY, Request
from fusion_tuner.slurm.reasons import Blocker, explain
from fusion_tuner.slurm.states import JobState, Snapshot, clock_text, default_runner, query_states

log = logging.getLogger(__name__)

NEVER_STREAK = 2  # polls in a row that must show a never-clearing reason before cancelling


class NeverStarts(RuntimeError):
    """The array's runs hold a pending reason that cannot clear; the jobs were cancelled.

    ``reason``: SLURM's pending reason (``PartitionConfig`` ...); the message says what to change.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class RunJob:
    """One run of the array: its SLURM job id, its overrides and its submitit log."""

    job_id: str
    label: str
    log: str


@dataclass
class ArrayMonitor:
    """Poll a job array until it ends, printing progress; cancel it if it can never start.

    Args:
        array_id: the array's job id (``12`` for tasks ``12_0`` ...).
        jobs: the runs of the array.
        request: one run's request (names the field in a never-clearing reason's fix).
        progress_interval_s: seconds between progress lines.
        keep_waiting: on a never-clearing reason, report and keep waiting instead of cancelling.
        poll_s: seconds between polls of squeue/sacct (default: min(15, progress_interval_s)).
    """

    array_id: str
    jobs: list[RunJob]
    request: Request | None = None
    progress_interval_s: float = 60.0
    keep_waiting: bool = False
    poll_s: float | None = None
    runner: Runner = default_runner
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    stream: TextIO | None = None  # where the progress bar goes (a terminal); None: no bar
    _info: ClusterInfo | None = field(default=None, init=False)
    _info_tried: bool = field(default=False, init=False)

    def cluster_info(self) -> ClusterInfo | None:
        if not self._info_tried:
            self._info_tried = True
            try:
                self._info = gather(need_accounting=True, runner=self.runner)
            except SchedulerUnavailable as exc:
                log.warning("could not read the partition's limits (%s)", exc)
        return self._info

    def user_has_running(self) -> bool | None:
        try:
            out = self.runner(["squeue", "-h", "-t", "RUNNING", "-u", current_user(), "-o", "%i"])
        except SchedulerUnavailable:
            return None
        return bool(out.strip())

    def snapshot(self) -> Snapshot:
        states = query_states(self.array_id, self.runner)
        return Snapshot(
            {j.job_id: states.get(j.job_id, JobState(j.job_id, "UNKNOWN")) for j in self.jobs}
        )

    def blockers(self, snap: Snapshot) -> list[Blocker]:
        """The array's pending reasons, explained; never-clearing ones first."""
        reasons = {
            s.reason
            for s in snap.states.values()
            if s.category == "pending" and s.state != "UNKNOWN"
        }
        found = [
            explain(r, self.request, self.cluster_info, self.user_has_running)
            for r in sorted(reasons)
        ]
        return sorted(found, key=lambda b: not b.never)

    def _emit(self, message: str, bar: str | None = None, level: int = logging.INFO) -> None:
        if self.stream is not None:
            self.stream.write("\r\033[K")
            self.stream.flush()
        log.log(level, message)
        if bar is not None and self.stream is not None:
            self.stream.write(bar)
            self.stream.flush()

    def wait(self, done: Callable[[], bool]) -> Snapshot | None:
        """Poll until every run ended (SLURM says so, or ``done()``); return the last snapshot.

        A progress line at once and then every ``progress_interval_s``; each pending reason is
        explained in words the first time it shows, a never-clearing one with its fix.

        Raises:
            NeverStarts: a never-clearing reason held for ``NEVER_STREAK`` polls in a row (the
                array is cancelled first), unless ``keep_waiting``.
        """
        poll = self.poll_s if self.poll_s is not None else min(15.0, self.progress_interval_s)
        start = self.clock()
        next_line = start
        streak = 0
        explained: set[str] = set()
        while True:
            now = self.clock()
            elapsed = now - start
            try:
                snap: Snapshot | None = self.snapshot()
                error = ""
            except SchedulerUnavailable as exc:
                snap, error = None, str(exc)
            if (snap is not None and snap.ended) or done():
                snap = self._settle(snap)
                counts = f": {snap.counts()}" if snap is not None else ""
                self._emit(
                    f"SLURM job {self.array_id}: every run ended after {clock_text(elapsed)}{counts}"
                )
                return snap
            self._info_tried = False  # node states change: read the cluster again if needed
            found = self.blockers(snap) if snap is not None else []
            never = found[0] if found and found[0].never else None
            streak = streak + 1 if never is not None else 0
            cancel = never is not None and streak >= NEVER_STREAK and not self.keep_waiting
            if snap is not None and never is not None and cancel:
                self._emit(snap.line(self.array_id, elapsed))
                raise NeverStarts(self._cancel(never), never.reason)
            if now >= next_line:
                next_line = now + self.progress_interval_s
                if snap is None:
                    self._emit(
                        f"SLURM job {self.array_id}, {clock_text(elapsed)}: state unavailable ({error})"
                    )
                else:
                    lines = [snap.line(self.array_id, elapsed)]
                    for b in found:
                        if b.never and streak >= NEVER_STREAK:  # keep_waiting: say it every time
                            lines.append(f"  {_never_text(b)} ({KEY}keep_waiting=true: waiting)")
                        elif not b.never and b.reason not in explained:
                            explained.add(b.reason)
                            lines.append(f"  {b.reason or 'no reason yet'}: {b.words}")
                    self._emit("\n".join(lines), snap.bar(elapsed))
            elif snap is not None and self.stream is not None:
                self.stream.write("\r\033[K" + snap.bar(elapsed))
                self.stream.flush()
            self.sleep(poll)

    def _settle(self, snap: Snapshot | None, timeout_s: float = 10.0) -> Snapshot | None:
        """Every run returned its result; give SLURM a few seconds to record the ends too."""
        deadline = self.clock() + timeout_s
        while (snap is None or not snap.ended) and self.clock() < deadline:
            self.sleep(1.0)
            try:
                snap = self.snapshot()
            except SchedulerUnavailable:
                return snap
        return snap

    def _cancel(self, b: Blocker) -> str:
        """scancel the array, wait until squeue holds none of it; the message for the user."""
        head = f"SLURM job {self.array_id}: {_never_text(b)}\n"
        try:
            self.runner(["scancel", self.array_id])
        except SchedulerUnavailable as exc:
            return head + f"  Cancelling it failed ({exc}): run `scancel {self.array_id}`."
        left = "?"
        deadline = self.clock() + 60
        while left and self.clock() < deadline:
            try:
                left = self.runner(["squeue", "-h", "-r", "-j", self.array_id, "-o", "%i"]).strip()
            except SchedulerUnavailable:
                left = "?"
            if left:
                self.sleep(1.0)
        gone = (
            "none is left in the queue" if not left else f"still queued: {' '.join(left.split())}"
        )
        return head + (
            f"  Cancelled its {len(self.jobs)} run(s) (scancel {self.array_id}); {gone}. "
            f"To keep waiting instead: {KEY}keep_waiting=true."
        )


def _never_text(b: Blocker) -> str:
    return f"can never start: {b.words} ({b.reason}).\n  Fix: {b.fix.rstrip('.')}."


def terminal_stream() -> TextIO | None:
    """stdout when it is a terminal (for the progress bar), else None."""
    return sys.stdout if sys.stdout.isatty() else None
