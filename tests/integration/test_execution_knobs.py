"""Knobs that change how a run executes, not what it computes: each still does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner import build_datamodule
from fusion_tuner.runtime import resolve_device as pick_device
from fusion_tuner.training.console import progress as _progress
from tests.conftest import compose

pytestmark = pytest.mark.integration


def test_progress_modes() -> None:
    from tqdm import tqdm

    assert isinstance(_progress(range(3), "bar"), tqdm)
    assert isinstance(_progress(range(3), "line"), range)
    assert isinstance(_progress(range(3), "auto"), range)  # pytest's stderr is not a terminal


def test_cuda_device_without_cuda_says_what_to_do() -> None:
    assert pick_device("cpu").type == "cpu"
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(RuntimeError, match=r"trainer\.device=auto"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


def test_loader_workers_give_the_same_batches(tmp_path: Path) -> None:
    dm = build_datamodule(compose("dataset.demo_size=40", "text.max_length=32", cache=tmp_path))
    one = [b.sample_id for b in dm.loader("val", shuffle=False, num_workers=0)]
    two = [b.sample_id for b in dm.loader("val", shuffle=False, num_workers=2)]
    assert one == two and one


def test_demo_seed_noise_and_vocabulary_size(tmp_path: Path) -> None:
    base = ("dataset.demo_size=40", "text.max_length=32")
    ref = build_datamodule(compose(*base, cache=tmp_path))
    seed = build_datamodule(compose(*base, "dataset.demo_seed=1", cache=tmp_path))
    noise = build_datamodule(compose(*base, "dataset.demo_noise=0.5", cache=tmp_path))
    vocab = build_datamodule(compose(*base, "text.tiny_vocab_size=150", cache=tmp_path))
    assert not ref.graphs.targets.equal(seed.graphs.targets)
    assert not ref.graphs.z.equal(seed.graphs.z) or not ref.graphs.r.equal(seed.graphs.r)
    assert ref.graphs.z.equal(noise.graphs.z)  # same crystals, other noise on the target
    assert not ref.graphs.targets.equal(noise.graphs.targets)
    assert vocab.info.vocab_size == 150 < ref.info.vocab_size


@pytest.mark.slow
def test_compiled_run_says_what_it_compiled_and_its_checkpoint_loads_eagerly(
    tmp_path: Path,
) -> None:
    """``trainer.compile=true`` through the CLI: the run completes, its log states how many
    graphs were compiled (training and evaluation: at least two), and its best model loads
    strictly into a model built without compilation (the checkpoint keeps the eager names)."""
    from fusion_tuner.rundir import Run
    from tests.helpers.cli import run_cli

    run_cli(tmp_path, "text=none", "budget.max_epochs=2", "trainer.compile=true")
    log = (tmp_path / "train.log").read_text()
    compiled = re.search(r"torch\.compile: (\d+) graph\(s\) compiled.*\((\d+) recompilation", log)
    assert compiled, log[-2000:]
    assert int(compiled[1]) >= 2 and int(compiled[2]) == int(compiled[1]) - 1
    model = Run(tmp_path).model  # rebuilt from the checkpoint alone, strictly, not compiled
    assert model._compiled_graph_encoder is None


def test_a_width_scaled_run_reloads_at_its_widths_and_predicts(tmp_path: Path) -> None:
    """``budget.width_scale`` is recorded with the checkpoint, so predict and analysis rebuild
    the model at the widths it trained with (smoke's hidden 32 at 0.5: 16)."""
    from fusion_tuner.rundir import Run
    from fusion_tuner.training.run import train
    from tests.helpers.cli import TINY

    train(compose(*TINY, "scheduler.epochs=1", "budget.width_scale=0.5"), tmp_path)
    run = Run(tmp_path)
    assert run.config.budget.width_scale == 0.5
    layer = run.model.alignn_layers[0].atom_update
    assert layer.edge_gate.in_features == 16
    ids = run.split["test"]
    from fusion_tuner.analysis.runs import predict_ids

    _, prediction = predict_ids(run, ids, torch.device("cpu"))
    assert len(prediction) == len(ids) and np.isfinite(prediction).all()
    # the same predictions as the run wrote itself
    written = run.predictions("test").aligned(ids)
    assert written is not None and np.allclose(written[1], prediction, atol=1e-4)
