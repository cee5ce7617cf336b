"""Sweeps on a live SLURM cluster (``.ci/slurm-cluster.sh start``): array jobs, requeue with
resume, and failure isolation. Skipped when no cluster answers, unless
FUSION_TUNER_REQUIRE_SLURM=1 (CI sets it), in which case an absent cluster is a failure."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_folder
from tests.integration.test_train_cli import TINY

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

# No GPUs on the test cluster, one core and a little memory per run.
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_task=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=20",
    "trainer.num_threads=1",
]


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


def rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as fh:
        return {r["run_dir"]: r for r in csv.DictReader(fh)}


def test_two_run_grid_as_a_job_array(tmp_path: Path) -> None:
    out = run(
        sweep_cmd(tmp_path / "sw", "budget=quick", "experiment=baseline,e09_no_cross_attention")
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    got = rows(tmp_path / "sw")
    assert {k: v["status"] for k, v in got.items()} == {
        "baseline-seed42": "completed",
        "e09_no_cross_attention-seed42": "completed",
    }
    assert (tmp_path / "sw" / "summary.md").is_file() and (
        tmp_path / "sw" / "summary.png"
    ).is_file()
    assert list((tmp_path / "sw" / ".submitit").iterdir()), "submitit wrote no job folder"


def _job_id(sweep_dir: Path) -> str:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    running = [line.split()[0] for line in out.splitlines() if line.endswith("RUNNING")]
    assert len(running) == 1, out
    return running[0]


def test_requeued_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sw"
    # long enough (~1 min) that the requeue (SIGTERM, then SIGKILL after KillWait) lands mid-run
    cmd = sweep_cmd(
        sweep_dir, "experiment=baseline", "scheduler.epochs=60", "dataset.demo_size=200"
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = sweep_dir / "baseline-seed42" / "history.csv"
    deadline = time.time() + 300
    while not (history.is_file() and len(history.read_text().splitlines()) >= 3):  # 2 epochs
        assert time.time() < deadline and proc.poll() is None, "the run never reached epoch 2"
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", _job_id(sweep_dir)], check=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    with history.open() as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == list(range(1, 61)), "epochs were repeated or lost across the requeue"
    log = (sweep_dir / "baseline-seed42" / "train.log").read_text()
    assert "resumed from last.pt at epoch" in log
    assert rows(sweep_dir)["baseline-seed42"]["status"] == "completed"


def test_failed_run_is_reported_and_the_other_completes(tmp_path: Path) -> None:
    good = write_folder(tmp_path / "good", n=40)
    bad = tmp_path / "bad"
    bad.mkdir()
    out = run(
        sweep_cmd(
            tmp_path / "sw",
            "budget=quick",
            "dataset=folder",
            f"dataset.root={good},{bad}",
            "hydra.sweep.subdir=run${hydra.job.num}",
        )
    )
    assert out.returncode != 0
    got = rows(tmp_path / "sw")
    assert got["run0"]["status"] == "completed"
    assert got["run1"]["status"] == "failed" and "id_prop.csv not found" in got["run1"]["error"]
