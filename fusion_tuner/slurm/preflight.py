"""Preflight: can one run of the sweep ever start on the target partition?

Checked before anything is submitted, from ``scontrol show partition|node|config`` and, where an
accounting database answers, ``sacctmgr``:

- the partition exists, accepts jobs (state), and allows the account/QOS given;
- the time limit is within the partition's ``MaxTime`` and the QOS's ``MaxWall``;
- CPUs, memory, GPUs (and GPU type) and node features of one run fit on at least one node of the
  partition, within ``MaxCPUsPerNode``/``MaxMemPerNode``/``MaxMemPerCPU``, and enough such nodes
  exist for ``nodes``;
- the account exists for the user and the QOS exists, and one run alone is within the QOS's
  per-job, per-user and per-node maxima (refused where SLURM enforces them, a warning otherwise).

A run that fits only on nodes that are all down or drained is a warning, not a refusal. Options
passed through ``additional_parameters`` are not checked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from fusion_tuner.slurm.cluster import ClusterInfo, Node, Partition, Qos
from fusion_tuner.slurm.parse import format_duration, node_usable, parse_gres, parse_mem_mb

KEY = "hydra.launcher."


@dataclass
class Request:
    """What one run of the array asks for, per node unless said otherwise."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int = 1
    # memory per node in MB (None: the cluster's default), and the field it came from
    mem_mb: float | None = None
    mem_field: str = "mem_gb"
    gpus: int = 0  # per node
    gpu_type: str | None = None
    gpu_field: str = "gpus_per_task"
    time_min: float | None = None
    constraint: str | None = None
    # the launcher's fields as given, to quote them in messages
    given: dict[str, Any] = field(default_factory=dict)

    @property
    def cpus(self) -> int:
        """CPUs per node."""
        return self.cpus_per_task * self.tasks_per_node

    @classmethod
    def from_launcher(cls, params: dict[str, Any]) -> Request:
        """Build from the ``hydra.launcher`` fields (submitit's names and units)."""
        p = {k: v for k, v in params.items() if v is not None}
        req = cls(
            partition=p.get("partition"),
            account=p.get("account"),
            qos=p.get("qos"),
            nodes=int(p.get("nodes", 1)),
            tasks_per_node=int(p.get("tasks_per_node", 1)),
            cpus_per_task=int(p.get("cpus_per_task", 1)),
            time_min=float(p["timeout_min"]) if "timeout_min" in p else None,
            constraint=p.get("constraint"),
            given=p,
        )
        if p.get("gpus_per_node"):
            req.gpus, req.gpu_field = int(p["gpus_per_node"]), "gpus_per_node"
        elif p.get("gpus_per_task"):
            req.gpus = int(p["gpus_per_task"]) * req.tasks_per_node
        elif p.get("gres"):
            gpus = [g for g in parse_gres(str(p["gres"])) if g.name == "gpu"]
            if gpus:
                req.gpus, req.gpu_type, req.gpu_field = gpus[0].count, gpus[0].type, "gres"
        if "mem_gb" in p:
            req.mem_mb = float(p["mem_gb"]) * 1024
        elif "mem_per_cpu" in p:
            req.mem_mb, req.mem_field = _mem(p["mem_per_cpu"]) * req.cpus, "mem_per_cpu"
        elif "mem_per_gpu" in p and req.gpus:
            req.mem_mb, req.mem_field = _mem(p["mem_per_gpu"]) * req.gpus, "mem_per_gpu"
        return req

    def quote(self, key: str) -> str:
        return f"{KEY}{key}={self.given.get(key)}"


def _mem(value: Any) -> float:
    return parse_mem_mb(str(value)) or 0.0


@dataclass
class Findings:
    """Refusals (the run can never start) and warnings (it may wait), each one line."""

    partition: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _mb(mb: float) -> str:
    return f"{mb:.0f} MB ({mb / 1024:.1f} GB)"


def check(req: Request, info: ClusterInfo) -> Findings:
    """Everything that keeps ``req`` from ever starting on ``info``'s target partition."""
    out = Findings(warnings=list(info.notes))
    names = ", ".join(sorted(info.partitions)) or "none"
    if req.partition is not None and req.partition not in info.partitions:
        out.errors.append(
            f"{req.quote('partition')}: no such partition on this cluster; partitions: {names}."
        )
        return out
    part = info.partitions.get(req.partition) if req.partition else info.default_partition
    if part is None:
        out.errors.append(
            f"{KEY}partition is null and the cluster has no default partition; "
            f"set {KEY}partition to one of: {names}."
        )
        return out
    out.partition = part.name
    _check_partition_state(part, out)
    _check_access(req, part, info, out)
    limit = part.max_time_min
    if req.time_min is not None and limit is not None and req.time_min > limit:
        out.errors.append(
            f"{req.quote('timeout_min')}: above the time limit of partition '{part.name}' "
            f"(MaxTime {format_duration(limit)} = {limit:g} min). "
            f"Set {KEY}timeout_min={math.floor(limit)} or less."
        )
    _check_resources(req, part, out)
    if info.qos is not None:
        _check_qos(req, part, info, out)
    return out


def _check_partition_state(part: Partition, out: Findings) -> None:
    if part.state == "UP":
        return
    if part.state == "DOWN":
        out.warnings.append(
            f"partition '{part.name}' is DOWN: runs will wait until an administrator brings it up."
        )
    else:  # DRAIN, INACTIVE: no new jobs are accepted
        out.errors.append(
            f"{KEY}partition={part.name}: the partition is {part.state} and accepts no new jobs; "
            "choose another partition."
        )


def _check_access(req: Request, part: Partition, info: ClusterInfo, out: Findings) -> None:
    if req.account is not None:
        if part.allow_accounts is not None and req.account not in part.allow_accounts:
            out.errors.append(
                f"{req.quote('account')}: partition '{part.name}' allows only the accounts "
                f"{', '.join(sorted(part.allow_accounts))}."
            )
        if part.deny_accounts and req.account in part.deny_accounts:
            out.errors.append(f"{req.quote('account')}: partition '{part.name}' denies it.")
        if info.user_accounts is not None and req.account not in info.user_accounts:
            mine = ", ".join(sorted(info.user_accounts)) or "none"
            msg = (
                f"{req.quote('account')}: user {info.user} has no association with this account "
                f"(their accounts: {mine})."
            )
            (out.errors if info.enforces("associations") else out.warnings).append(msg)
    if req.qos is not None:
        if part.allow_qos is not None and req.qos not in part.allow_qos:
            out.errors.append(
                f"{req.quote('qos')}: partition '{part.name}' allows only the QOS "
                f"{', '.join(sorted(part.allow_qos))}."
            )
        if part.deny_qos and req.qos in part.deny_qos:
            out.errors.append(f"{req.quote('qos')}: partition '{part.name}' denies it.")
        if info.qos is not None and req.qos not in info.qos:
            msg = f"{req.quote('qos')}: no such QOS; QOS: {', '.join(sorted(info.qos)) or 'none'}."
            (out.errors if info.enforces("associations") else out.warnings).append(msg)
    if part.allow_groups is not None and os.geteuid() != 0:
        import grp

        mine = {grp.getgrgid(g).gr_name for g in os.getgroups()}
        if not mine & part.allow_groups:
            out.errors.append(
                f"{KEY}partition={part.name}: the partition allows only the groups "
                f"{', '.join(sorted(part.allow_groups))}, and you are in none of them."
            )


def _features_ok(constraint: str, features: set[str]) -> bool | None:
    """Whether ``features`` satisfy ``constraint`` (``a``, ``a&b``, ``a,b``, ``a|b``); None for
    expressions this check does not evaluate (brackets, counts, mixed operators)."""
    c = constraint.replace(",", "&")
    if any(ch in c for ch in "[]()*!") or ("&" in c and "|" in c):
        return None
    if "|" in c:
        return any(f.strip() in features for f in c.split("|"))
    return all(f.strip() in features for f in c.split("&"))


def _check_resources(req: Request, part: Partition, out: Findings) -> None:
    """Whether one run's CPUs, memory, GPUs and features fit some node, and enough of them."""
    nodes = part.nodes
    if not nodes:
        out.errors.append(f"{KEY}partition={part.name}: the partition has no nodes.")
        return
    n_before = len(out.errors)
    _check_cpus(req, part, out)
    _check_memory(req, part, out)
    _check_gpus(req, part, out)
    _check_constraint(req, part, out)
    if len(out.errors) > n_before:
        return
    _check_fitting_nodes(req, part, out)


def _check_cpus(req: Request, part: Partition, out: Findings) -> None:
    """CPUs per node against the largest node and ``MaxCPUsPerNode``."""
    biggest = max(part.nodes, key=lambda n: n.cpus)
    cpu_cap = min(biggest.cpus, part.max_cpus_per_node or biggest.cpus)
    if req.cpus <= cpu_cap:
        return
    where = (
        f"partition '{part.name}' allows {cpu_cap} CPUs per node (MaxCPUsPerNode)"
        if cpu_cap < biggest.cpus
        else f"the largest node of partition '{part.name}' ({biggest.name}) has {cpu_cap} CPUs"
    )
    per = (
        f" ({req.cpus_per_task} per task x {req.tasks_per_node} tasks)"
        if req.tasks_per_node > 1
        else ""
    )
    fix = (
        f"Set {KEY}cpus_per_task={cpu_cap // req.tasks_per_node} or less."
        if cpu_cap >= req.tasks_per_node
        else f"Set {KEY}tasks_per_node={cpu_cap // req.cpus_per_task} or less."
    )
    out.errors.append(
        f"{req.quote('cpus_per_task')}: asks for {req.cpus} CPUs per run{per}, but {where}. {fix}"
    )


def _check_memory(req: Request, part: Partition, out: Findings) -> None:
    """Memory per node against the largest node, ``MaxMemPerNode`` and ``MaxMemPerCPU``."""
    if req.mem_mb is None:
        return
    largest = max(part.nodes, key=lambda n: n.memory_mb)
    caps = [
        (largest.memory_mb, f"the largest node of partition '{part.name}' ({largest.name}) has")
    ]
    if part.max_mem_per_node_mb is not None:
        caps.append((part.max_mem_per_node_mb, f"partition '{part.name}' allows (MaxMemPerNode)"))
    if part.max_mem_per_cpu_mb is not None:
        caps.append(
            (
                part.max_mem_per_cpu_mb * req.cpus,
                f"partition '{part.name}' allows (MaxMemPerCPU x {req.cpus} CPUs)",
            )
        )
    cap, where = min(caps, key=lambda c: c[0])
    if req.mem_mb > cap:
        out.errors.append(
            f"{req.quote(req.mem_field)}: asks for {_mb(req.mem_mb)} per run, but {where} "
            f"{_mb(cap)}. Set {KEY}{req.mem_field}={_mem_value(req, cap)} or less."
        )


def _check_gpus(req: Request, part: Partition, out: Findings) -> None:
    """GPUs (of the type asked for, if any) per node against the best-equipped node."""
    if not req.gpus:
        return
    nodes = part.nodes
    best = max(nodes, key=lambda n: n.gpus(req.gpu_type))
    have = best.gpus(req.gpu_type)
    kind = (f"'{req.gpu_type}' " if req.gpu_type else "") + ("GPU" if req.gpus == 1 else "GPUs")
    if have == 0:
        types = sorted({g.type or "untyped" for n in nodes for g in n.gres if g.name == "gpu"})
        other = f" (GPU types there: {', '.join(types)})" if types else ""
        one = f"a '{req.gpu_type}' GPU" if req.gpu_type else "a GPU"
        out.errors.append(
            f"{req.quote(req.gpu_field)}: asks for {req.gpus} {kind} per run, but no node of "
            f"partition '{part.name}' has {one}{other}. Set {KEY}{req.gpu_field}=null (or use "
            "hydra/launcher=slurm_cpu), or choose a partition with GPUs."
        )
    elif req.gpus > have:
        out.errors.append(
            f"{req.quote(req.gpu_field)}: asks for {req.gpus} {kind} per run, but the largest "
            f"node of partition '{part.name}' ({best.name}) has {have}. Lower it to {have}."
        )


def _check_constraint(req: Request, part: Partition, out: Findings) -> None:
    """Node features against ``constraint``; a warning for expressions not evaluated here."""
    if not req.constraint:
        return
    nodes = part.nodes
    unknown = [n for n in nodes if _features_ok(req.constraint, n.features) is None]
    if unknown:
        out.warnings.append(f"{req.quote('constraint')}: expression not checked by the preflight.")
    elif not any(_features_ok(req.constraint, n.features) for n in nodes):
        feats = sorted({f for n in nodes for f in n.features})
        out.errors.append(
            f"{req.quote('constraint')}: no node of partition '{part.name}' has these "
            f"features (features there: {', '.join(feats) or 'none'})."
        )


def _check_fitting_nodes(req: Request, part: Partition, out: Findings) -> None:
    """Some node holds everything together, enough of them exist, and one is in service."""
    nodes = part.nodes
    fitting = [n for n in nodes if fits(req, n, part)]
    if not fitting:
        out.errors.append(
            f"no single node of partition '{part.name}' offers {req.cpus} CPUs"
            + (f", {_mb(req.mem_mb)}" if req.mem_mb is not None else "")
            + (f", {req.gpus} GPUs" if req.gpus else "")
            + " together; nodes: "
            + "; ".join(
                f"{n.name}: {n.cpus} CPUs, {n.memory_mb:.0f} MB, {n.gpus()} GPUs" for n in nodes
            )
            + f". Lower {KEY}cpus_per_task, {KEY}{req.mem_field} or {KEY}{req.gpu_field}."
        )
        return
    if req.nodes > len(fitting) or (part.max_nodes is not None and req.nodes > part.max_nodes):
        most = min(len(fitting), part.max_nodes or len(fitting))
        out.errors.append(
            f"{req.quote('nodes')}: partition '{part.name}' can give a run at most {most} nodes "
            f"of this size. Set {KEY}nodes={most} or less."
        )
        return
    usable = [n for n in fitting if node_usable(n.state)]
    if len(usable) < req.nodes:
        states = ", ".join(f"{n.name} {n.state}" for n in fitting)
        out.warnings.append(
            f"every node of partition '{part.name}' that can hold a run is down or drained "
            f"({states}): the runs will wait until an administrator returns one to service."
        )


def fits(req: Request, node: Node, part: Partition) -> bool:
    """Whether one node of ``part`` can hold the per-node share of ``req``."""
    if req.cpus > min(node.cpus, part.max_cpus_per_node or node.cpus):
        return False
    if req.mem_mb is not None:
        cap = node.memory_mb
        if part.max_mem_per_node_mb is not None:
            cap = min(cap, part.max_mem_per_node_mb)
        if part.max_mem_per_cpu_mb is not None:
            cap = min(cap, part.max_mem_per_cpu_mb * req.cpus)
        if req.mem_mb > cap:
            return False
    if req.gpus and node.gpus(req.gpu_type) < req.gpus:
        return False
    return not req.constraint or _features_ok(req.constraint, node.features) is not False


def _mem_value(req: Request, cap_mb: float) -> str:
    """The largest value of the memory field that fits in ``cap_mb``, in that field's unit."""
    if req.mem_field == "mem_gb":
        return str(math.floor(cap_mb / 1024))
    per = req.cpus if req.mem_field == "mem_per_cpu" else max(req.gpus, 1)
    return f"{math.floor(cap_mb / per)}M"


_TRES = (("cpu", "CPUs"), ("mem", "memory"), ("gres/gpu", "GPUs"), ("node", "nodes"))


def _job_tres(req: Request, per_node: bool) -> dict[str, float]:
    n = 1 if per_node else req.nodes
    out = {"cpu": float(req.cpus * n), "node": float(1 if per_node else req.nodes)}
    if req.mem_mb is not None:
        out["mem"] = req.mem_mb * n
    out["gres/gpu"] = float(req.gpus * n)
    return out


def _tres_value(key: str, text: str) -> float:
    return (parse_mem_mb(text) or 0.0) if key == "mem" else float(text)


def _check_qos(req: Request, part: Partition, info: ClusterInfo, out: Findings) -> None:
    enforced = info.enforces("limits")
    target = out.errors if enforced else out.warnings
    tail = (
        ""
        if enforced
        else " (SLURM does not enforce QOS limits on this cluster, so it may still run)"
    )
    for name, origin in ((req.qos, f"{KEY}qos"), (part.qos, f"the QOS of partition '{part.name}'")):
        q: Qos | None = info.qos.get(name) if name and info.qos else None
        if q is None:
            continue
        if (
            req.time_min is not None
            and q.max_wall_min is not None
            and req.time_min > q.max_wall_min
        ):
            target.append(
                f"{req.quote('timeout_min')}: above MaxWall {format_duration(q.max_wall_min)} of "
                f"QOS '{q.name}' ({origin}). Set {KEY}timeout_min={math.floor(q.max_wall_min)} or less{tail}."
            )
        for limits, scope, per_node in (
            (q.max_tres_per_job, "per job", False),
            (q.max_tres_per_user, "per user", False),
            (q.max_tres_per_node, "per node", True),
        ):
            asked = _job_tres(req, per_node)
            for key, label in _TRES:
                if key in limits and key in asked and asked[key] > _tres_value(key, limits[key]):
                    target.append(
                        f"QOS '{q.name}' ({origin}) allows {limits[key]} {label} {scope}, and one "
                        f"run asks for {_fmt_tres(key, asked[key])}: it can never start under "
                        f"this QOS. Lower the request or choose another {KEY}qos{tail}."
                    )
        asked = _job_tres(req, per_node=False)
        for key, label in _TRES:
            if (
                key in q.min_tres
                and key in asked
                and asked[key] < _tres_value(key, q.min_tres[key])
            ):
                target.append(
                    f"QOS '{q.name}' ({origin}) needs at least {q.min_tres[key]} {label} per job, "
                    f"and one run asks for {_fmt_tres(key, asked[key])}{tail}."
                )


def _fmt_tres(key: str, value: float) -> str:
    return _mb(value) if key == "mem" else f"{value:g}"


class PreflightError(RuntimeError):
    """The sweep's runs can never start where they would be submitted."""


def format_refusal(findings: Findings) -> str:
    lines = ["SLURM preflight: these runs can never start, so nothing was submitted:"]
    lines += [f"  - {e}" for e in findings.errors]
    lines.append(
        "Fix the field(s) above (hydra/launcher=slurm_cpu holds CPU-only defaults), or skip this "
        f"check with {KEY}preflight=false."
    )
    return "\n".join(lines)
