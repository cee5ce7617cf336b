"""Parse the text that SLURM's client commands print into plain values (no commands run here).

Formats, as SLURM 22.05-24.x print them:

- ``scontrol show partition|node -o``: one record per line, ``Key=value`` pairs separated by
  spaces; a few values hold spaces themselves (``OS=Linux 6.1 #1 SMP``, ``Reason=Not responding``).
- ``scontrol show config``: ``Key = value`` lines.
- ``squeue``/``sacct``/``sacctmgr`` with ``|``-separated fields (``-o "%i|%T|%r"``, ``-P``).
- Durations: ``UNLIMITED``/``INFINITE``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
  ``D-HH:MM:SS``; memory: a number with an optional ``K``/``M``/``G``/``T`` suffix (``B`` allowed
  after it), in MB when there is none; 1 G = 1024 M as SLURM counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNLIMITED = ("UNLIMITED", "INFINITE", "NONE", "N/A", "(null)", "")
_KEY = re.compile(r"(?:(?<=\s)|^)([A-Za-z][\w/:.\-]*)=")


def parse_records(text: str) -> list[dict[str, str]]:
    """Records of ``scontrol show <entity> -o``: one dict of ``Key -> value`` per non-empty line."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        matches = list(_KEY.finditer(line))
        record = {}
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
            record[m.group(1)] = line[m.end() : end].strip()
        records.append(record)
    return records


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config``: ``Key = value`` lines to a dict (other lines are ignored)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def parse_table(text: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """``|``-separated lines (``squeue -o "%i|%T"``, ``sacct -P``) to dicts keyed by ``fields``."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        rows.append({f: (parts[i].strip() if i < len(parts) else "") for i, f in enumerate(fields)})
    return rows


def parse_duration_min(text: str | None) -> float | None:
    """A SLURM duration in minutes; None for unlimited or unset (``UNLIMITED``, ``NONE``...)."""
    if text is None or text.strip().upper() in UNLIMITED:
        return None
    text = text.strip()
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        else:
            hours, minutes, seconds = parts
    return days * 1440 + hours * 60 + minutes + seconds / 60


def format_duration(minutes: float) -> str:
    """Minutes as SLURM writes them (``D-HH:MM:SS`` or ``HH:MM:SS``)."""
    total = round(minutes * 60)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)B?$", re.IGNORECASE)
_MEM_FACTOR = {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024 * 1024}


def parse_mem_mb(text: str | None) -> float | None:
    """A SLURM memory size in MB (``24105M``, ``2G``, ``64GB``, ``1024``); None if unlimited."""
    if text is None or text.strip().upper() in UNLIMITED or text.strip() == "0":
        return None
    m = _MEM.match(text.strip())
    if not m:
        raise ValueError(f"not a SLURM memory size: {text!r}")
    return float(m.group(1)) * _MEM_FACTOR[m.group(2).upper()]


@dataclass(frozen=True)
class Gres:
    """One generic resource of a node or a request: ``gpu:a100:4`` is ``Gres("gpu", "a100", 4)``."""

    name: str
    type: str | None
    count: int


def parse_gres(text: str | None) -> list[Gres]:
    """A node's ``Gres=`` or a request's ``--gres``: ``gpu:a100:4(S:0-1),gpu:2,shard:8``."""
    if text is None or text.strip() in UNLIMITED:
        return []
    out = []
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        item = item.strip()
        if not item:
            continue
        item = item.removeprefix("gres/").removeprefix("gres:")
        parts = item.split(":")
        count = 1
        if len(parts) > 1 and parts[-1].isdigit():
            count = int(parts.pop())
        out.append(Gres(parts[0], parts[1] if len(parts) > 1 else None, count))
    return out


def parse_tres(text: str | None) -> dict[str, str]:
    """A TRES list (``cpu=1,mem=2G,gres/gpu=2,gres/gpu:a100=1``) to a dict; empty if unset."""
    if text is None or text.strip() in UNLIMITED:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def expand_job_ids(text: str) -> list[str]:
    """``12`` -> [``12``]; ``12_3`` -> [``12_3``]; ``12_[0-2,5%2]`` -> [``12_0``, ``12_1``, ``12_2``, ``12_5``]."""
    m = re.fullmatch(r"(\d+)_\[([^\]]*)\]", text.strip())
    if not m:
        return [text.strip()]
    base, spec = m.group(1), m.group(2).split("%")[0]
    ids = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        ids += [f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return ids


def node_state_flags(state: str) -> set[str]:
    """A node state (``IDLE+DRAIN``, ``DOWN*``, ``MIXED+CLOUD``) as a set of upper-case flags;
    a trailing ``*`` (not responding) becomes ``NOT_RESPONDING``."""
    flags = set()
    if state.endswith("*"):
        flags.add("NOT_RESPONDING")
        state = state.rstrip("*")
    flags.update(s.strip().upper() for s in state.split("+") if s.strip())
    return flags


# A node in one of these states takes no new job until an administrator acts.
UNUSABLE_NODE_FLAGS = frozenset(
    {
        "DOWN",
        "DRAIN",
        "DRAINED",
        "DRAINING",
        "FAIL",
        "FAILING",
        "NOT_RESPONDING",
        "FUTURE",
        "INVAL",
        "UNKNOWN",
    }
)


def node_usable(state: str) -> bool:
    """Whether a node in ``state`` can start new jobs (idle, mixed, allocated, reserved ...)."""
    return not (node_state_flags(state) & UNUSABLE_NODE_FLAGS)
