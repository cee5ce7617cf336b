"""The SLURM tests need a live cluster (``.ci/slurm-cluster.sh start``). They skip when none
answers, unless FUSION_TUNER_REQUIRE_SLURM=1 (CI sets it): then an absent cluster is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        return "sbatch/sacct not found"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if out.returncode != 0 or not {"idle", "mixed", "allocated"} & set(out.stdout.split()):
        return f"no usable SLURM node: {out.stdout.strip() or out.stderr.strip()}"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem is None:
        return
    if os.environ.get("FUSION_TUNER_REQUIRE_SLURM") == "1":
        pytest.fail(f"FUSION_TUNER_REQUIRE_SLURM=1 but the cluster is not reachable: {problem}")
    pytest.skip(
        f"no SLURM cluster reachable ({problem}); start one with .ci/slurm-cluster.sh start"
    )
