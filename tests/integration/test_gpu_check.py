"""``bench/gpu_check.sh``'s epoch-timing step in its CPU dry mode (``DEVICE=cpu``): one epoch of
``experiment=alignn_reference`` on synthetic crystals drawn from ``store_full``, projected to
300 epochs, and its row in the script's table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_gpu_check_dry_epoch_time(samples: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ONLY": "epoch_time",
        "DEVICE": "cpu",
        "THREADS": "1",
        "OUT": str(tmp_path),
        "DATA": str(samples),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "epoch_time.json").read_text())
    assert result["dry"] is True and result["device"] == "cpu"
    assert result["splits"] == {"train": 160, "val": 20, "test": 20}
    assert (result["batch_size"], result["epochs"], result["steps_per_epoch"]) == (64, 300, 3)
    expected = 300 * result["epoch_s"] + result["val_pass_s"] * 20 / 20
    assert result["projected_run_s"] == pytest.approx(expected)
    assert "| step epoch_time | ok" in proc.stdout
    assert "| step loader | skipped: not in ONLY |" in proc.stdout
    assert "alignn_reference epoch (--dry: not the recipe's cost)" in proc.stdout
