"""What a SLURM sweep tells the user, on the live cluster: the preflight refuses a request the
node cannot hold before submitting; without the preflight the same request is found
never-startable from its pending reason, cancelled and failed; a normal sweep prints progress
lines; a detached sweep returns at once and is summarised later with its live state."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion_tuner.slurm.parse import parse_config, parse_records
from tests.helpers.cli import summary_rows as rows
from tests.helpers.slurm import run, sweep_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


def node_cpus() -> int:
    """The most CPUs any node of the cluster offers to a job."""
    out = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True)
    return max(int(r.get("CPUEfctv") or r["CPUTot"]) for r in parse_records(out.stdout))


def next_job_id() -> str:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    return parse_config(out.stdout)["NEXT_JOB_ID"]


def queued(array_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-j", array_id, "-o", "%i %T %r"], capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh sweep (and submitit) folder; whatever it submitted is cancelled afterwards."""
    path = tmp_path / "sw"
    yield path
    record = path / "slurm_jobs.json"
    if record.is_file():
        subprocess.run(["scancel", json.loads(record.read_text())["array_job_id"]], check=False)


CPU = ["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=20"]


def test_preflight_refuses_more_cpus_than_the_node_has(sweep_dir: Path) -> None:
    n = node_cpus()
    before = next_job_id()
    t0 = time.time()
    out = run(
        sweep_cmd(
            sweep_dir,
            "experiment=baseline,e06_lower_lr",
            *CPU,
            f"hydra.launcher.cpus_per_task={n + 1}",
        ),
        timeout=120,
    )
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"hydra.launcher.cpus_per_task={n + 1}: asks for {n + 1} CPUs per run" in out.stderr
    assert f"has {n} CPUs. Set hydra.launcher.cpus_per_task={n} or less." in out.stderr
    assert "nothing was submitted" in out.stderr and "hydra.launcher.preflight=false" in out.stderr
    assert next_job_id() == before, "a job was submitted"
    assert not sweep_dir.exists() and "summary" not in out.stdout
    assert time.time() - t0 < 60


def test_never_startable_runs_are_cancelled_and_the_sweep_fails(sweep_dir: Path) -> None:
    n = node_cpus()
    t0 = time.time()
    out = run(
        sweep_cmd(
            sweep_dir,
            "experiment=baseline,e06_lower_lr",
            *CPU,
            f"hydra.launcher.cpus_per_task={n + 1}",
            "hydra.launcher.preflight=false",
            "hydra.launcher.progress_interval_s=2",
        ),
        timeout=300,
    )
    elapsed = time.time() - t0
    assert out.returncode == 3, out.stdout[-2000:] + out.stderr[-2000:]
    record = json.loads((sweep_dir / "slurm_jobs.json").read_text())
    array_id = record["array_job_id"]
    assert queued(array_id) == "", "jobs of the sweep are left in the queue"
    assert record["cancelled"]["reason"] == "PartitionConfig"
    assert f"SLURM job {array_id}: can never start: " in out.stderr
    assert f"Set hydra.launcher.cpus_per_task={n} or less." in out.stderr
    assert f"Cancelled its 2 run(s) (scancel {array_id}); none is left in the queue." in out.stderr
    assert "2 pending (PartitionConfig: 2)" in out.stdout
    with (sweep_dir / "summary.csv").open() as fh:  # both runs are "(missing)": no run dir
        statuses = {r["experiment"]: r["status"] for r in csv.DictReader(fh)}
    assert statuses == {
        "baseline": f"cancelled by the sweep (job {array_id}_0: PartitionConfig)",
        "e06_lower_lr": f"cancelled by the sweep (job {array_id}_1: PartitionConfig)",
    }
    assert elapsed < 120, f"took {elapsed:.0f} s"


PROGRESS = re.compile(
    r"SLURM job (\d+), \d\d:\d\d: (\d+) pending[^,]*, (\d+) running, (\d+) completed, (\d+) failed"
)


def test_two_run_sweep_prints_progress_and_ends_with_the_summary(sweep_dir: Path) -> None:
    out = run(
        sweep_cmd(
            sweep_dir,
            "experiment=baseline,e06_lower_lr",
            "hydra.launcher.progress_interval_s=1",
        ),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = PROGRESS.findall(out.stdout)
    assert len(lines) >= 2, out.stdout[-3000:]
    array_id = lines[0][0]
    assert all(sum(map(int, c[1:])) == 2 for c in lines)  # every run counted once per line
    assert any(int(c[2]) > 0 for c in lines), "no line saw a running run"
    assert f"SLURM job {array_id}: every run ended after" in out.stdout
    assert "0 pending, 0 running, 2 completed, 0 failed" in out.stdout
    for i, exp in enumerate(["baseline", "e06_lower_lr"]):
        log = sweep_dir / ".submitit" / f"{array_id}_{i}" / f"{array_id}_{i}_0_log.out"
        assert f"{array_id}_{i}  experiment={exp}" in out.stdout and f"{log}" in out.stdout
        assert log.is_file()
    summary_at = out.stdout.index("# Sweep summary:")
    assert summary_at > out.stdout.index("every run ended")  # the summary comes last
    written = f"summary: {sweep_dir / 'summary.md'} and summary.json (2 runs, 0 not completed)"
    assert written in out.stdout
    got = rows(sweep_dir)
    assert {k: v["status"] for k, v in got.items()} == {
        "baseline-seed42": "completed",
        "e06_lower_lr-seed42": "completed",
    }
    assert (sweep_dir / "summary.md").is_file() and (sweep_dir / "summary.png").is_file()


def summary(sweep_dir: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "fusion_tuner.summary", str(sweep_dir)], timeout=120)


def test_detached_sweep_returns_at_once_and_is_summarised_later(sweep_dir: Path) -> None:
    t0 = time.time()
    # held in the queue (sbatch --hold) so that its state is known when summarised
    out = run(
        sweep_cmd(
            sweep_dir,
            "experiment=baseline,e06_lower_lr",
            "hydra.launcher.detach=true",
            "+hydra.launcher.additional_parameters.hold=true",
        ),
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert time.time() - t0 < 60
    record = json.loads((sweep_dir / "slurm_jobs.json").read_text())
    array_id = record["array_job_id"]
    assert record["detached"] is True
    assert "detached: the runs go on without this process" in out.stdout
    assert f"python -m fusion_tuner.summary {sweep_dir}" in out.stdout
    assert not (sweep_dir / "summary.md").exists()
    early = summary(sweep_dir)
    assert early.returncode == 0, early.stderr[-2000:]
    assert f"pending (JobHeldUser, job {array_id}_0)" in early.stdout
    assert "SLURM state of unfinished runs as of" in early.stdout
    assert "2 run(s) are still pending or running" in early.stdout
    subprocess.run(["scontrol", "release", array_id], check=True)
    deadline = time.time() + 240
    while queued(array_id):
        assert time.time() < deadline, queued(array_id)
        time.sleep(2)
    late = summary(sweep_dir)
    assert {r["status"] for r in rows(sweep_dir).values()} == {"completed"}, late.stdout[-2000:]
    assert "SLURM state of unfinished runs" not in late.stdout
