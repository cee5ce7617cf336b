"""``slurm_jobs.json``: which SLURM job runs which grid point of a sweep, kept in the sweep dir.

Written by the SLURM launcher right after submitting (and updated when it cancels the array), so
that ``python -m fusion_tuner.summary SWEEP_DIR`` can show, for runs that have no final
``metrics.json`` yet, what SLURM says about them now (pending with its reason, running, ended),
also after the submitting shell is gone (``hydra.launcher.detach=true``).

Layout::

    {"array_job_id": "12", "partition": "debug", "submitted_at": "2026-11-30T05:40:00",
     "detached": false, "cancelled": null,
     "jobs": [{"job_id": "12_0", "overrides": ["experiment=baseline"], "log": ".../12_0_0_log.out"}]}

``cancelled``, when the launcher cancelled the array: ``{"reason": ..., "message": ...}``. A
sweep submitted in several batches (``hydra.sweeper.max_batch_size``) appends each batch's jobs;
``array_job_id`` is the latest array.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fusion_tuner.io import atomic_write_text
from fusion_tuner.slurm.cluster import Runner, SchedulerUnavailable
from fusion_tuner.slurm.states import default_runner, query_states

JOBS_FILE = "slurm_jobs.json"
# run statuses that SLURM cannot change (those of metrics.json, and a refused attempt)
FINAL = ("completed", "failed", "refused", "unreadable")


def write_record(sweep_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(sweep_dir) / JOBS_FILE
    atomic_write_text(json.dumps(record, indent=1), path)
    return path


def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / JOBS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def is_detached(sweep_dir: Path) -> bool:
    """Whether the sweep's array was submitted with ``hydra.launcher.detach=true``."""
    record = read_record(sweep_dir)
    return bool(record and record.get("detached"))


def describe(state: str, reason: str, job_id: str, cancelled: dict[str, Any] | None) -> str:
    """A run status for the summary: ``pending (Resources, job 12_1)``, ``running (job 12_0)``."""
    if cancelled and state in ("UNKNOWN", "CANCELLED", "PENDING"):  # sacct may lag a little
        return f"cancelled by the sweep (job {job_id}: {cancelled.get('reason')})"
    if state == "UNKNOWN":
        return f"unknown to SLURM (job {job_id})"
    word = state.lower()
    return (
        f"{word} ({reason}, job {job_id})"
        if reason and state == "PENDING"
        else f"{word} (job {job_id})"
    )


def annotate_runs(sweep_dir: Path, runs: list[Any], runner: Runner = default_runner) -> str:
    """Give runs without a final ``metrics.json`` their live SLURM state as ``status``.

    ``runs`` are :class:`fusion_tuner.rundir.Run` (``status``, ``overrides``, ``live_status``); they are matched
    to the recorded jobs by their override lists. Returns a note for the summary ("" when the
    sweep was not submitted to SLURM or every run is final); when the scheduler does not answer,
    the note says so and the statuses stay those of the files.
    """
    record = read_record(sweep_dir)
    if record is None:
        return ""
    open_runs = [r for r in runs if r.status not in FINAL]
    if not open_runs:
        return ""
    arrays = sorted({j["job_id"].split("_")[0] for j in record["jobs"]}, key=int)
    array_id = " ".join(arrays)
    try:
        states = {k: v for a in arrays for k, v in query_states(a, runner).items()}
    except SchedulerUnavailable as exc:
        return (
            f"SLURM did not answer ({exc}): the status of {len(open_runs)} unfinished run(s) "
            f"is from the files only (job array {array_id})."
        )
    by_overrides = {tuple(sorted(j["overrides"])): j for j in record["jobs"]}
    for run in open_runs:
        job = by_overrides.get(tuple(sorted(run.overrides)))
        if job is None:
            continue
        s = states.get(job["job_id"])
        state, reason = (s.state, s.reason) if s else ("UNKNOWN", "")
        run.live_status = describe(state, reason, job["job_id"], record.get("cancelled"))
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    logs = Path(record["jobs"][0]["log"]).parent.parent if record["jobs"] else "?"
    note = f"SLURM state of unfinished runs as of {when} (job array {array_id}, squeue/sacct); logs in {logs}."
    live = sum(r.status.startswith(("pending", "running")) for r in open_runs)
    if live:
        note += (
            f" {live} run(s) are still pending or running: summarise again once they end "
            "(rerunning the sweep now would start them twice)."
        )
    return note
