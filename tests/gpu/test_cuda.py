"""On a CUDA device: bf16 autocast, the text-state store built and served on the GPU, pinned
batches, a training run on a numbered device. Skipped without CUDA (``-m gpu`` selects them;
``bench/gpu_check.sh`` runs them with the throughput benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusion_tuner.models.builders import build_model
from fusion_tuner.training.loop import autocast
from fusion_tuner.training.text_store import prepare_text_states
from tests.conftest import compose

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DATA = ("dataset.demo_size=60", "text.max_length=48")
CUDA = torch.device("cuda:0")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gpu_cache")


def _setup(cache: Path, *overrides: str):
    from fusion_tuner import build_datamodule

    cfg = compose(*DATA, *overrides, cache=cache)
    dm = build_datamodule(cfg)
    dm.pin_memory = True
    torch.manual_seed(0)
    model = build_model(cfg, dm.info).to(CUDA).eval()
    y = dm.datasets["train"].targets
    model.set_normalizer(float(y.mean()), float(y.std()))
    return cfg, dm, model


def test_bf16_autocast_predictions_equal_float32_within_tolerance(cache) -> None:
    _, dm, model = _setup(cache)
    spread = float(dm.datasets["train"].targets.std())
    for batch in dm.loader("val", batch_size=16):
        batch = batch.to(CUDA, non_blocking=True)
        with torch.no_grad():
            full = model(batch).prediction
            with autocast(CUDA, bf16=True):
                half = model(batch).prediction
        assert half.dtype in (torch.float32, torch.bfloat16)
        torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.05 * spread)


@pytest.mark.parametrize("overrides", [("text.freeze=true",), ("text.train_last_n_layers=1",)])
def test_store_built_on_the_gpu_equals_direct_outputs_and_batches_are_pinned(
    cache, overrides
) -> None:
    cfg, dm, model = _setup(cache, *overrides)
    direct = [b.to(CUDA) for b in dm.loader("val", batch_size=8)]
    report = prepare_text_states(cfg, dm, model.text_encoder, CUDA)
    assert report["used"] and report["built"]
    loader = dm.loader("val", batch_size=8)
    assert loader.pin_memory
    for batch, plain in zip(loader, direct, strict=True):
        assert batch.text_states.is_pinned() and batch.z.is_pinned()
        batch = batch.to(CUDA, non_blocking=True)
        with torch.no_grad():
            stored, computed = model(batch), model(plain)
        torch.testing.assert_close(stored.prediction, computed.prediction, rtol=1e-2, atol=2e-3)
        torch.testing.assert_close(
            stored.stages["text"], computed.stages["text"], rtol=1e-2, atol=2e-3
        )


@pytest.mark.parametrize("index", [0, 1])
def test_a_run_trains_on_a_numbered_cuda_device_from_the_store(tmp_path, index) -> None:
    if index >= torch.cuda.device_count():
        pytest.skip(f"needs {index + 1} CUDA devices")
    from tests.helpers.cli import TINY

    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusion_tuner",
            f"hydra.run.dir={tmp_path / 'run'}",
            *TINY,
            f"trainer.device=cuda:{index}",
            "trainer.bf16=true",
            "text.freeze=true",
            "scheduler.epochs=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["device"] == f"cuda:{index}"
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["text_store"]["used"]
