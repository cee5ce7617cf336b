"""SLURM's pending reasons in plain words, and which of them can never clear by themselves.

A reason is either *waiting* (it clears by itself: other jobs finish, the array's parallelism
frees a slot, a requeued job's delay passes) or *never* (nothing but a change of the request or
of the cluster clears it: ``PartitionConfig``, ``PartitionTimeLimit``, a per-job QOS maximum,
``ReqNodeNotAvail`` while every node able to hold the run is down ...). A never-clearing reason
comes with the override that fixes it, taken from the preflight's checks when the cluster answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fusion_tuner.slurm.cluster import ClusterInfo
from fusion_tuner.slurm.parse import node_usable
from fusion_tuner.slurm.preflight import KEY, Request, check, fits


@dataclass
class Blocker:
    """A pending reason in plain words; ``never``: it cannot clear by itself; ``fix``: the change
    that clears it."""

    reason: str
    never: bool
    words: str
    fix: str = ""


WAITING_WORDS = {
    "Priority": "waiting for jobs of higher priority",
    "Resources": "waiting for CPUs, memory or GPUs that other jobs hold",
    "JobArrayTaskLimit": f"waiting for a slot: {KEY}array_parallelism limits the runs at once",
    "BeginTime": "waiting for its start time (a requeued run waits a little before it restarts)",
    "Dependency": "waiting for the jobs it depends on",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
    "PartitionDown": "the partition is down: waiting for an administrator to bring it up",
    "PartitionInactive": "the partition is inactive: waiting for an administrator",
    "JobHeldUser": "held by you: release it with scontrol release",
    "JobHeldAdmin": "held by an administrator",
    "Prolog": "running the node's prolog",
    "": "just submitted, not yet considered by the scheduler",
}

NEVER_FIXED = {
    "PartitionTimeLimit": (
        "its time limit is above the partition's MaxTime",
        f"lower {KEY}timeout_min",
    ),
    "PartitionNodeLimit": ("it asks for more nodes than the partition allows", f"lower {KEY}nodes"),
    "BadConstraints": ("no node has the features it asks for", f"change {KEY}constraint"),
    "InvalidAccount": ("the account does not exist for you", f"change {KEY}account"),
    "AccountNotAllowed": ("the partition does not allow the account", f"change {KEY}account"),
    "InvalidQOS": ("the QOS does not exist for you", f"change {KEY}qos"),
    "QOSNotAllowed": ("the partition or your account does not allow the QOS", f"change {KEY}qos"),
    "DependencyNeverSatisfied": ("a job it depends on failed", "resubmit without the dependency"),
}

_QOS_LIMIT = re.compile(
    r"^(QOS|Assoc)(Max|Min|Grp)(\w*?)(PerJob|PerNode|PerUser|PerAccount)?(Limit)?$"
)
_TRES_FIELD = (
    ("WallDuration", "timeout_min"),
    ("Cpu", "cpus_per_task"),
    ("Mem", "mem_gb"),
    ("GRES", "gpus_per_task"),
    ("Node", "nodes"),
    ("Jobs", "qos"),
    ("SubmitJob", "qos"),
)


def _limit_field(what: str) -> str:
    return next((f for k, f in _TRES_FIELD if what.startswith(k)), "qos")


def explain(
    reason: str,
    request: Request | None = None,
    info: Callable[[], ClusterInfo | None] | None = None,
    user_has_running: Callable[[], bool | None] | None = None,
) -> Blocker:
    """Classify a pending reason. ``info`` (lazy) lets a never-clearing reason name the exact
    field and limit (from the preflight's checks) and decides whether ``ReqNodeNotAvail`` can
    ever clear; ``user_has_running`` (lazy) decides whether a per-user QOS limit can."""
    base = reason.split(",")[0].strip()
    if base == "PartitionConfig":
        fix = _preflight_fix(request, info) or (
            f"lower {KEY}cpus_per_task, {KEY}mem_gb or {KEY}gpus_per_task, or choose another "
            f"{KEY}partition"
        )
        return Blocker(reason, True, "it asks for more than any node of the partition offers", fix)
    if base in NEVER_FIXED:
        words, fix = NEVER_FIXED[base]
        return Blocker(reason, True, words, _preflight_fix(request, info) or fix)
    if base in ("ReqNodeNotAvail", "NodeDown") or base.startswith("Nodes_required"):
        return _explain_unavailable_nodes(reason, request, info)
    m = _QOS_LIMIT.match(base)
    if m:
        return _explain_qos_limit(reason, base, m, request, info, user_has_running)
    return Blocker(reason, False, WAITING_WORDS.get(base, f"pending ({reason})"))


def _explain_unavailable_nodes(
    reason: str, request: Request | None, info: Callable[[], ClusterInfo | None] | None
) -> Blocker:
    """``ReqNodeNotAvail`` and kin: never clears when no node able to hold a run is in service
    (as far as the cluster answers), else it waits for one to return."""
    words = "the nodes it needs are unavailable (down, drained or reserved)"
    cluster = info() if info and request else None
    if cluster is not None and request is not None:
        part = cluster.partitions.get(request.partition or "") or cluster.default_partition
        if part is not None:
            able = [n for n in part.nodes if fits(request, n, part)]
            if not able:
                fix = _preflight_fix(request, info)
                return Blocker(
                    reason, True, f"no node of partition '{part.name}' can hold a run", fix
                )
            if not any(node_usable(n.state) for n in able):
                states = ", ".join(f"{n.name} {n.state}" for n in able) or "none"
                return Blocker(
                    reason,
                    True,
                    f"every node of partition '{part.name}' able to hold a run is down or "
                    f"drained ({states})",
                    f"choose another {KEY}partition, or wait for an administrator "
                    f"({KEY}keep_waiting=true)",
                )
    return Blocker(reason, False, words + ": waiting for one to return")


def _explain_qos_limit(
    reason: str,
    base: str,
    m: re.Match[str],
    request: Request | None,
    info: Callable[[], ClusterInfo | None] | None,
    user_has_running: Callable[[], bool | None] | None,
) -> Blocker:
    """A QOS or association limit (``m``: its ``_QOS_LIMIT`` match): never clears for a per-job
    or minimum limit, nor for a per-user one while the user has nothing running; else waits."""
    kind, bound, what, scope = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    owner = "QOS" if kind == "QOS" else "account (association)"
    fld = f"{KEY}{_limit_field(what)}"
    if bound == "Min" or scope in ("PerJob", "PerNode"):
        return Blocker(
            reason,
            True,
            f"one run exceeds a per-job limit of its {owner} ({base})",
            _preflight_fix(request, info) or f"lower {fld} or choose another {KEY}qos",
        )
    if scope == "PerUser" and user_has_running is not None and user_has_running() is False:
        return Blocker(
            reason,
            True,
            f"one run alone exceeds a per-user limit of its {owner} ({base}): you have no "
            "running job that could free a share of it",
            _preflight_fix(request, info) or f"lower {fld} or choose another {KEY}qos",
        )
    whose = {"PerUser": "your", "PerAccount": "your account's"}.get(scope, "the group's")
    return Blocker(
        reason, False, f"waiting for {whose} running jobs to free a {owner} limit ({base})"
    )


def _preflight_fix(request: Request | None, info: Callable[[], ClusterInfo | None] | None) -> str:
    """The preflight's refusal lines for ``request``, if the cluster answers: they name the
    field and the largest value allowed."""
    if request is None or info is None:
        return ""
    cluster = info()
    return "\n       ".join(check(request, cluster).errors) if cluster is not None else ""
