"""Run SLURM's client commands and collect what a preflight needs: partitions, nodes, QOS, accounts.

Every command goes through :func:`run_command` (one timeout, one error type), and every reader
takes a ``runner`` so that unit tests can feed recorded output instead of a live cluster.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from fusion_tuner.slurm.parse import (
    Gres,
    parse_config,
    parse_duration_min,
    parse_gres,
    parse_mem_mb,
    parse_records,
    parse_table,
    parse_tres,
)

Runner = Callable[[list[str]], str]
TIMEOUT_S = 30.0


class SchedulerUnavailable(RuntimeError):
    """A SLURM command is missing, failed or did not answer in time."""


def run_command(argv: list[str], timeout: float = TIMEOUT_S, empty_on: str | None = None) -> str:
    """Run one SLURM command and return its stdout; :class:`SchedulerUnavailable` if it fails.

    ``empty_on``: an error text that means "nothing to report" (``squeue -j`` on a job the
    controller has already forgotten says ``Invalid job id specified``); it returns "".
    """
    if shutil.which(argv[0]) is None:
        raise SchedulerUnavailable(f"{argv[0]} not found on PATH")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SchedulerUnavailable(
            f"`{' '.join(argv)}` did not answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise SchedulerUnavailable(f"`{' '.join(argv)}` could not run: {exc}") from None
    if out.returncode != 0 and empty_on is not None and empty_on in out.stderr:
        return ""
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise SchedulerUnavailable(
            f"`{' '.join(argv)}` failed (exit {out.returncode}): {msg[-1] if msg else 'no output'}"
        )
    return out.stdout


def current_user() -> str:
    """The login name (the uid as text where there is none, as in some containers)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass
class Node:
    """A compute node as ``scontrol show node`` reports it (memory in MB, usable by jobs)."""

    name: str
    cpus: int
    memory_mb: float
    gres: list[Gres]
    features: set[str]
    state: str
    partitions: list[str]

    def gpus(self, gpu_type: str | None = None) -> int:
        return sum(g.count for g in self.gres if g.name == "gpu" and gpu_type in (None, g.type))


def _names(value: str | None) -> set[str] | None:
    """``ALL``/unset -> None (no restriction), else the set of names of a comma list."""
    if value is None or value.strip().upper() in ("ALL", "", "(NULL)"):
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@dataclass
class Partition:
    """A partition's limits (None: unlimited or unrestricted) and its nodes."""

    name: str
    default: bool
    state: str
    max_time_min: float | None
    max_cpus_per_node: int | None
    max_mem_per_node_mb: float | None
    max_mem_per_cpu_mb: float | None
    max_nodes: int | None
    allow_accounts: set[str] | None
    deny_accounts: set[str] | None
    allow_qos: set[str] | None
    deny_qos: set[str] | None
    allow_groups: set[str] | None
    qos: str | None
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def from_record(cls, r: dict[str, str]) -> Partition:
        qos = r.get("QoS")
        return cls(
            name=r["PartitionName"],
            default=r.get("Default", "NO").upper() == "YES",
            state=r.get("State", "UP").upper(),
            max_time_min=parse_duration_min(r.get("MaxTime")),
            max_cpus_per_node=_int_or_none(r.get("MaxCPUsPerNode")),
            max_mem_per_node_mb=parse_mem_mb(r.get("MaxMemPerNode")),
            max_mem_per_cpu_mb=parse_mem_mb(r.get("MaxMemPerCPU")),
            max_nodes=_int_or_none(r.get("MaxNodes")),
            allow_accounts=_names(r.get("AllowAccounts")),
            deny_accounts=_names(r.get("DenyAccounts")),
            allow_qos=_names(r.get("AllowQos")),
            deny_qos=_names(r.get("DenyQos")),
            allow_groups=_names(r.get("AllowGroups")),
            qos=None if qos in (None, "N/A", "(null)") else qos,
        )


def node_from_record(r: dict[str, str]) -> Node:
    cpus = int(r.get("CPUEfctv") or r.get("CPUTot") or 0)
    memory = parse_mem_mb(r.get("RealMemory")) or 0.0
    memory -= parse_mem_mb(r.get("MemSpecLimit")) or 0.0
    features = _names(r.get("AvailableFeatures")) or set()
    return Node(
        name=r["NodeName"],
        cpus=cpus,
        memory_mb=memory,
        gres=parse_gres(r.get("Gres")),
        features=features,
        state=r.get("State", "UNKNOWN"),
        partitions=sorted(_names(r.get("Partitions")) or set()),
    )


@dataclass
class Qos:
    """A QOS's per-job, per-user and per-node maxima and per-job minima (TRES dicts)."""

    name: str
    max_wall_min: float | None
    max_tres_per_job: dict[str, str]
    max_tres_per_user: dict[str, str]
    max_tres_per_node: dict[str, str]
    min_tres: dict[str, str]


QOS_FIELDS = ("Name", "MaxWall", "MaxTRES", "MaxTRESPerUser", "MaxTRESPerNode", "MinTRES")


def read_qos(runner: Runner = run_command) -> dict[str, Qos]:
    """Every QOS known to the accounting database, by name."""
    text = runner(["sacctmgr", "-n", "-P", "show", "qos", "format=" + ",".join(QOS_FIELDS)])
    return {
        r["Name"]: Qos(
            r["Name"],
            parse_duration_min(r["MaxWall"]),
            parse_tres(r["MaxTRES"]),
            parse_tres(r["MaxTRESPerUser"]),
            parse_tres(r["MaxTRESPerNode"]),
            parse_tres(r["MinTRES"]),
        )
        for r in parse_table(text, QOS_FIELDS)
        if r["Name"]
    }


def read_user_accounts(user: str, runner: Runner = run_command) -> set[str]:
    """The accounts ``user`` has an association with."""
    text = runner(
        ["sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}", "format=Account"]
    )
    return {r["Account"] for r in parse_table(text, ("Account",)) if r["Account"]}


@dataclass
class ClusterInfo:
    """What the preflight reads. ``qos``/``user_accounts`` are None when sacctmgr did not answer
    (no accounting database); ``notes`` says what could not be checked and why."""

    partitions: dict[str, Partition]
    config: dict[str, str]
    qos: dict[str, Qos] | None = None
    user_accounts: set[str] | None = None
    user: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions.values() if p.default), None)

    def enforces(self, what: str) -> bool:
        """Whether ``AccountingStorageEnforce`` holds ``what`` (associations, limits, qos)."""
        flags = {
            f.strip().lower() for f in self.config.get("AccountingStorageEnforce", "").split(",")
        }
        if what == "associations":  # limits and qos imply associations
            return bool(flags & {"associations", "limits", "qos", "safe"})
        if what == "limits":
            return bool(flags & {"limits", "safe"})
        return what in flags


def gather(
    *, need_accounting: bool, runner: Runner = run_command, user: str | None = None
) -> ClusterInfo:
    """Partitions (with their nodes) and the configuration; QOS and the user's accounts too when
    ``need_accounting`` and the cluster keeps accounts in slurmdbd (a note says so when sacctmgr
    does not answer). Raises :class:`SchedulerUnavailable` when scontrol does not answer."""
    partitions = {
        r["PartitionName"]: Partition.from_record(r)
        for r in parse_records(runner(["scontrol", "show", "partition", "-o"]))
        if "PartitionName" in r
    }
    for r in parse_records(runner(["scontrol", "show", "node", "-o"])):
        if "NodeName" not in r:
            continue
        node = node_from_record(r)
        for name in node.partitions:
            if name in partitions:
                partitions[name].nodes.append(node)
    info = ClusterInfo(partitions, parse_config(runner(["scontrol", "show", "config"])))
    info.user = user or current_user()
    # without an accounting database (AccountingStorageType none) there are no accounts or QOS
    if need_accounting and "slurmdbd" in info.config.get("AccountingStorageType", ""):
        try:
            info.qos = read_qos(runner)
            info.user_accounts = read_user_accounts(info.user, runner)
        except SchedulerUnavailable as exc:
            info.notes.append(f"accounts and QOS not checked ({exc})")
    return info
