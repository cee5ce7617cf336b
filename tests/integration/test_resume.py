"""SIGKILL mid-training, rerun the same command: the result equals an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import TINY, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RESUME = ["scheduler.epochs=6", "trainer.deterministic=true", "regularization.graph_dropout=0.3"]
TIMING = {"wall_time_s", "train_crystals_per_s", "pid", "attempts"}


def comparable_metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMING}


def comparable_history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as fh:
        return [
            {k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(fh)
        ]


def start_until_epochs(run_dir: Path, *overrides: str, epochs: int = 2, timeout: float = 300):
    """Start ``python -m fusion_tuner`` into ``run_dir`` and return its process once
    ``history.csv`` holds ``epochs`` epochs (fails the test if the run ends first)."""
    cmd = [sys.executable, "-m", "fusion_tuner", f"hydra.run.dir={run_dir}", *TINY, *overrides]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ
    )
    history = run_dir / "history.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) > epochs:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("cache", ["same", "fresh"])
def test_killed_run_resumes_to_the_same_result(tmp_path: Path, cache: str) -> None:
    # "fresh": the resume finds an empty cache (another machine, a cleaned cache); it must keep
    # the run's own tokenizer, since WordPiece training is not deterministic
    reference = tmp_path / "reference"
    run_cli(reference, *RESUME)

    killed = tmp_path / "killed"
    proc = start_until_epochs(killed, *RESUME)  # 2 epochs done
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = json.loads((killed / "metrics.json").read_text())["status"]
    assert status == "running"  # killed: nothing could record the end
    epochs_before = len(comparable_history(killed))
    assert 2 <= epochs_before < 6

    again = [f"dataset.cache_dir={tmp_path / 'new_cache'}"] if cache == "fresh" else []
    out = run_cli(killed, *RESUME, *again)
    assert "resumed from last.pt" in out.stdout + out.stderr
    assert comparable_history(killed) == comparable_history(reference)
    assert comparable_metrics(killed) == comparable_metrics(reference)
    attempts = json.loads((killed / "metrics.json").read_text())["attempts"]
    assert [a["action"] for a in attempts] == ["fresh", "resumed after interruption"]
