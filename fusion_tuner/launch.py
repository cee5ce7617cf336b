"""Where a launcher (torchrun, srun) put this process: its rank among the processes of one run.

Torch-free, so that the command line can ask cheaply (e.g. only rank 0 writes a sweep's
summary). The ranks themselves are :mod:`fusion_tuner.training.distributed`'s business.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """What a launcher (torchrun, srun) told this process: its rank and where ranks meet."""

    rank: int
    world: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # torchrun | slurm


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: ``gpu[03-05,09],cpu1`` -> ``gpu03``,
    ``rack[1-2]-n[01-04]`` -> ``rack1-n01`` (what ``scontrol show hostnames`` lists first)."""
    depth, end = 0, len(nodelist)
    for i, ch in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            end = i
            break
    first = nodelist[:end].strip()
    return re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[-,]", m.group(1))[0], first)


def from_env(env: Mapping[str, str] | None = None) -> Launch | None:
    """The launch a launcher set up for this process, or None for a plain process.

    torchrun's variables win over SLURM's; SLURM counts only inside an ``srun`` step (its
    ``SLURM_STEP_NUM_TASKS``). A world of one process is a plain process.
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        if world <= 1:
            return None
        return Launch(
            rank=int(env["RANK"]),
            world=world,
            local_rank=int(env.get("LOCAL_RANK", "0")),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", "29500")),
            source="torchrun",
        )
    tasks = env.get("SLURM_STEP_NUM_TASKS")
    if tasks and "SLURM_PROCID" in env:
        world = int(tasks)
        if world <= 1:
            return None
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
        job = int(env.get("SLURM_JOB_ID", "0") or 0)
        return Launch(
            rank=int(env["SLURM_PROCID"]),
            world=world,
            local_rank=int(env.get("SLURM_LOCALID", "0")),
            master_addr=env.get("MASTER_ADDR") or first_host(nodes),
            # one port per job (array tasks have their own job ids), away from torchrun's 29500
            master_port=int(env.get("MASTER_PORT") or 20_000 + job % 20_000),
            source="slurm",
        )
    return None


def env_rank() -> int:
    """This process's rank under a launcher (0 for a plain process)."""
    launch = from_env()
    return launch.rank if launch is not None else 0
