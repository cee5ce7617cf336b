"""States of a job array's tasks, from ``sacct`` (ended jobs) and ``squeue`` (live ones), and
the progress line and bar that summarise them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fusion_tuner.slurm.cluster import Runner, SchedulerUnavailable, run_command
from fusion_tuner.slurm.parse import expand_job_ids, parse_table

PENDING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING")
RUNNING = ("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED")
COMPLETED = "COMPLETED"


def default_runner(argv: list[str]) -> str:
    """:func:`run_command`, where ``squeue -j`` on jobs the controller forgot means "none"."""
    return run_command(argv, empty_on="Invalid job id" if argv[0] == "squeue" else None)


@dataclass(frozen=True)
class JobState:
    """One array task: SLURM state (first word, upper case), pending reason ("" if none), node."""

    job_id: str
    state: str
    reason: str = ""
    node: str = ""

    @property
    def category(self) -> str:
        """pending, running, completed or failed (every other end: cancelled, timeout, OOM ...)."""
        if self.state in PENDING:
            return "pending"
        if self.state in RUNNING:
            return "running"
        return "completed" if self.state == COMPLETED else "failed"


def _clean_reason(reason: str) -> str:
    return "" if reason in ("None", "(null)", "") else reason


def query_states(array_id: str, runner: Runner = default_runner) -> dict[str, JobState]:
    """The state of every task of job array ``array_id``: ``sacct`` first, ``squeue`` on top
    (live and current). Raises :class:`SchedulerUnavailable` if neither answers."""
    states: dict[str, JobState] = {}
    errors = []
    try:
        text = runner(
            ["sacct", "-n", "-P", "-X", "-j", array_id, "-o", "JobID,State,Reason,NodeList"]
        )
        for r in parse_table(text, ("id", "state", "reason", "node")):
            for jid in expand_job_ids(r["id"]):
                state = r["state"].split()[0].upper() if r["state"] else "UNKNOWN"
                node = "" if r["node"] == "None assigned" else r["node"]
                states[jid] = JobState(jid, state, _clean_reason(r["reason"]), node)
    except SchedulerUnavailable as exc:
        errors.append(str(exc))
    try:
        text = runner(["squeue", "-h", "-r", "-j", array_id, "-o", "%i|%T|%r|%N"])
        for r in parse_table(text, ("id", "state", "reason", "node")):
            for jid in expand_job_ids(r["id"]):
                states[jid] = JobState(
                    jid, r["state"].upper(), _clean_reason(r["reason"]), r["node"]
                )
    except SchedulerUnavailable as exc:
        errors.append(str(exc))
    if len(errors) == 2:
        raise SchedulerUnavailable("; ".join(errors))
    return states


def compress_ids(ids: list[str]) -> str:
    """``12_0 12_1 12_2 12_5`` -> ``12_[0-2,5]``; other ids are listed as they are."""
    groups: dict[str, list[int]] = {}
    plain = []
    for jid in ids:
        base, sep, idx = jid.partition("_")
        if sep and idx.isdigit():
            groups.setdefault(base, []).append(int(idx))
        else:
            plain.append(jid)
    out = list(plain)
    for base, idxs in groups.items():
        idxs.sort()
        spans, start = [], idxs[0]
        for a, b in zip(idxs, [*idxs[1:], None], strict=True):
            if b != a + 1:
                spans.append(f"{start}-{a}" if a != start else f"{a}")
                start = b
        out.append(f"{base}_{spans[0]}" if len(idxs) == 1 else f"{base}_[{','.join(spans)}]")
    return " ".join(out)


def clock_text(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass
class Snapshot:
    """The array at one poll: the state of each of its tasks (UNKNOWN if SLURM said nothing)."""

    states: dict[str, JobState]

    def by_category(self) -> dict[str, list[JobState]]:
        out: dict[str, list[JobState]] = {
            "pending": [],
            "running": [],
            "completed": [],
            "failed": [],
        }
        for s in self.states.values():
            out["pending" if s.state == "UNKNOWN" else s.category].append(s)
        return out

    @property
    def ended(self) -> bool:
        return all(
            s.state != "UNKNOWN" and s.category in ("completed", "failed")
            for s in self.states.values()
        )

    def counts(self) -> str:
        """``1 pending (Resources: 1), 1 running, 0 completed, 0 failed``."""
        cats = self.by_category()
        reasons = Counter(
            s.reason or ("unknown" if s.state == "UNKNOWN" else "None") for s in cats["pending"]
        )
        pend = f"{len(cats['pending'])} pending"
        if reasons:
            pend += " (" + ", ".join(f"{r}: {n}" for r, n in reasons.most_common()) + ")"
        fails = Counter(s.state for s in cats["failed"])
        failed = f"{len(cats['failed'])} failed"
        if fails:
            failed += " (" + ", ".join(f"{s}: {n}" for s, n in fails.most_common()) + ")"
        return (
            f"{pend}, {len(cats['running'])} running, {len(cats['completed'])} completed, {failed}"
        )

    def line(self, array_id: str, elapsed: float) -> str:
        """One progress line: counts per category with pending reasons, and the job ids."""
        cats = self.by_category()
        ids = " | ".join(
            f"{cat} {compress_ids([s.job_id for s in cats[cat]])}"
            for cat in ("pending", "running", "completed", "failed")
            if cats[cat]
        )
        return f"SLURM job {array_id}, {clock_text(elapsed)}: {self.counts()} | {ids}"

    def bar(self, elapsed: float, width: int = 24) -> str:
        cats = self.by_category()
        n = max(len(self.states), 1)
        ended = len(cats["completed"]) + len(cats["failed"])
        filled = round(width * ended / n)
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {ended}/{n} ended | "
            f"{len(cats['running'])} running | {len(cats['pending'])} pending | {clock_text(elapsed)}"
        )
