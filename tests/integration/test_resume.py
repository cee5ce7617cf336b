"""SIGKILL mid-training, rerun the same command: the result equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.helpers.cli import (
    comparable_history,
    comparable_metrics,
    run_cli,
    start_until_epochs,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RESUME = ["scheduler.epochs=6", "trainer.deterministic=true", "regularization.graph_dropout=0.3"]


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
