"""A fake SLURM for the unit tests of ``fusion_tuner.slurm``: recorded command output
(``tests/assets/slurm``, see its README) answered by command prefix, plus scripted squeue/sacct."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fusion_tuner.slurm.cluster import ClusterInfo, SchedulerUnavailable, gather

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "slurm"

RECORDED = {
    ("scontrol", "show", "partition"): "partition",
    ("scontrol", "show", "node"): "node",
    ("scontrol", "show", "config"): "config",
    ("sacctmgr", "-n", "-P", "show", "qos"): "qos",
    ("sacctmgr", "-n", "-P", "show", "assoc"): "assoc",
}


class FakeSlurm:
    """Answers SLURM commands: the recorded cluster ``prefix`` (``ci`` or ``gpu``) for
    scontrol/sacctmgr, ``handlers`` (command prefix -> function of argv) for the rest; records
    every call in ``calls``."""

    def __init__(
        self,
        prefix: str = "ci",
        handlers: dict[tuple[str, ...], Callable[[list[str]], str]] | None = None,
        config: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.handlers = handlers or {}
        self.config = config
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(list(argv))
        for key, fn in self.handlers.items():
            if tuple(argv[: len(key)]) == key:
                return fn(argv)
        for key, name in RECORDED.items():
            if tuple(argv[: len(key)]) == key:
                if name == "config" and self.config is not None:
                    return self.config
                return (ASSETS / f"{self.prefix}_{name}.txt").read_text()
        raise SchedulerUnavailable(f"fake SLURM has no answer for {' '.join(argv)}")

    def count(self, *prefix: str) -> int:
        return sum(tuple(c[: len(prefix)]) == prefix for c in self.calls)


def cluster(prefix: str = "ci", config: str | None = None, user: str = "root") -> ClusterInfo:
    return gather(need_accounting=True, runner=FakeSlurm(prefix, config=config), user=user)


def enforcing(prefix: str, flags: str) -> str:
    """The recorded ``scontrol show config`` with ``AccountingStorageEnforce`` set to ``flags``."""
    lines = (ASSETS / f"{prefix}_config.txt").read_text().splitlines()
    return "\n".join(
        f"AccountingStorageEnforce = {flags}" if ln.startswith("AccountingStorageEnforce") else ln
        for ln in lines
    )
