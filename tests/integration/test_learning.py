"""A short run on the demo data beats predicting the training mean by a wide margin."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHORT_RUN = [
    "dataset.demo_size=600",
    "budget.max_structures=null",
    "arch.hidden_features=64",
    "arch.alignn_layers=2",
    "arch.gcn_layers=1",
    "fusion.middle_fusion_hidden_dim=64",
    "attention.cross_modal_hidden_dim=64",
    "attention.fine_grained_hidden_dim=64",
    "scheduler.epochs=30",
    "scheduler.warmup_steps=30",
    "batch.batch_size=32",
    "trainer.loss=l1",
    "trainer.deterministic=true",
    "text.freeze=true",
]


def test_short_demo_run_beats_the_mean_baseline(tmp_path: Path) -> None:
    run_dir = tmp_path / "learn"
    run_cli(run_dir, *SHORT_RUN)  # after the tiny defaults of run_cli: these values win
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with (run_dir / "predictions_val.csv").open() as fh:
        val = np.array([float(r["target"]) for r in csv.DictReader(fh)])
    mad = np.abs(val - val.mean()).mean()
    print(
        f"val MAE {metrics['val']['mae']:.4f} = {metrics['val']['mae'] / mad:.3f} x MAD {mad:.4f}"
    )
    assert metrics["val"]["mae"] < 0.6 * mad, (metrics["val"]["mae"], mad)
    assert metrics["val"]["r2"] > 0.2  # the mean predictor scores about 0
