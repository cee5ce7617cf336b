"""Sweeps on a live SLURM cluster (``.ci/slurm-cluster.sh start``): requeue with resume, and
failure isolation (a plain two-run job array: test_slurm_feedback.py)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import write_folder
from tests.helpers.cli import LEARNING, ROUNDS
from tests.helpers.cli import summary_rows as rows
from tests.helpers.slurm import run, sweep_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.integration]


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
            "dataset=folder",
            f"dataset.root={good},{bad}",
            "hydra.sweep.subdir=run${hydra.job.num}",
        )
    )
    assert out.returncode != 0
    got = rows(tmp_path / "sw")
    assert got["run0"]["status"] == "completed"
    assert got["run1"]["status"] == "failed" and "id_prop.csv not found" in got["run1"]["error"]


def test_tasks_per_node_train_one_run_on_two_ranks(tmp_path: Path) -> None:
    # hydra.launcher.tasks_per_node=2: submitit runs the job in two srun tasks, which become the
    # two DDP ranks of the one run (trainer.devices follows the launcher)
    sweep_dir = tmp_path / "sw"
    out = run(
        sweep_cmd(
            sweep_dir,
            "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.mem_gb=3",
            "scheduler.epochs=2",
        )
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = sweep_dir / "baseline-seed42"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["status"], metrics["devices"], metrics["epochs_run"]) == ("completed", 2, 2)
    logs = sorted((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # one per task
    epoch_lines = [p.read_text().count("epoch 1/2 train_loss") for p in logs]
    assert epoch_lines == [1, 0]  # task 0 (rank 0) reports; rank 1 only trains
    assert (run_dir / "train.log").read_text().count("epoch 1/2 train_loss") == 1


def test_each_round_of_seeds_is_one_job_array(tmp_path: Path) -> None:
    """The rounds sweeper on SLURM: the grid is one job array, each later round of seeds for
    the experiments still open is another, and the summary records the seeds each arm ran."""
    sw = tmp_path / "sw"
    out = run(sweep_cmd(sw, *ROUNDS, *LEARNING, "sweep.confirm_seeds=0"), timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    launches = re.findall(r"sweep: (round \d+[^,]*), (\d+) run\(s\)", out.stdout + out.stderr)
    assert launches[0] == ("round 1 (the grid)", "4")
    # at 2 seeds nothing is decided (O'Brien-Fleming spends almost nothing at the first look)
    assert launches[1] == ("round 2 (seeds for e09_no_cross_attention)", "2")
    arrays = {p.name.split("_")[0] for p in (sw / ".submitit").iterdir() if "_" in p.name}
    assert len({a for a in arrays if a.isdigit()}) == len(launches) == 2
    e09 = json.loads((sw / "summary.json").read_text())["decisions"]["e09_no_cross_attention"]
    assert e09["seeds_run"] == [1, 2, 3] and e09["pairs_used"] == 3
    assert {r["run_dir"]: r["status"] for r in rows(sw).values()} == {
        f"{e}-seed{s}": "completed"
        for e in ("baseline", "e09_no_cross_attention")
        for s in (1, 2, 3)
    }
