"""Running sweeps on the live test cluster: the command and the process (the summary rows:
:func:`tests.helpers.cli.summary_rows`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.cli import TINY

# No GPUs on the test cluster, one core and a little memory per run.
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_task=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20",
    "trainer.num_threads=1",
]


def sweep_cmd(sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fusion_tuner",
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY,
        *SLURM,
        *overrides,
    ]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
