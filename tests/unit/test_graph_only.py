"""``text=none``: the graph-only model, its config rules, and float32 de-standardisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusion_tuner.config import inert_text_keys, modality
from fusion_tuner.models.builders import build_model
from tests.conftest import compose

DATA = ("dataset.demo_size=40", "text.max_length=48", "arch=slim")
TEXT_PARTS = ("text_encoder", "middle_fusion", "fine_grained", "cross_modal", "contrastive")
EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "experiment").glob("*.yaml")
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(info, batch) of the same crystals for each modality."""
    from fusion_tuner import build_datamodule

    cache = tmp_path_factory.mktemp("graph_only_cache")
    out = {}
    for text in ("none", "tiny"):
        dm = build_datamodule(compose(*DATA, f"text={text}", cache=cache))
        out[text] = (dm.info, next(iter(dm.loader("train", batch_size=6, shuffle=False))))
    return out


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_text_none(experiment: str) -> None:
    cfg = compose(f"experiment={experiment}", "text=none")
    assert modality(cfg) == "graph" and cfg.experiment_name == experiment


def test_text_dependent_knobs_are_listed_as_inert() -> None:
    e03 = compose("experiment=e03_two_layer_fusion", "text=none")
    assert inert_text_keys(e03) == [
        "fusion.middle_fusion_hidden_dim",
        "fusion.middle_fusion_layers",
        "fusion.middle_fusion_num_heads",
    ]
    # e02 also raises graph_dropout, which acts: only the text-side dropouts are inert
    e02 = compose("experiment=e02_aggressive_regularization", "text=none")
    assert "regularization.graph_dropout" not in inert_text_keys(e02)
    assert "regularization.cross_modal_dropout" in inert_text_keys(e02)
    assert inert_text_keys(compose("experiment=e03_two_layer_fusion")) == []  # fused: all act


def test_text_rules_do_not_block_a_graph_only_run() -> None:
    """Fusion-layer and head-count rules concern the text branch; text=none skips them."""
    from fusion_tuner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"outside 1\.\.arch\.alignn_layers=1"):
        compose("arch.alignn_layers=1")
    cfg = compose("arch.alignn_layers=1", "attention.fine_grained_num_heads=3", "text=none")
    assert cfg.arch.alignn_layers == 1


def test_graph_only_model_has_no_text_part_and_two_stages(data) -> None:
    info, batch = data["none"]
    assert info.modality == "graph" and info.vocab_size == 0 and info.tokenizer_id == "none"
    assert not hasattr(batch, "input_ids") or batch.input_ids is None
    model = build_model(compose(*DATA, "text=none"), info)
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if n.startswith(TEXT_PARTS)]
    out = model(batch)
    assert list(out.stages) == ["graph", "fused"]
    assert out.stages["graph"].shape == (6, 128)
    assert torch.equal(out.stages["fused"], out.stages["graph"])
    assert out.contrastive_loss is None and out.prediction.shape == (6,)
    # the graph vector is the mean over each crystal's atoms of the last layer's atom states
    fused = build_model(compose(*DATA), data["tiny"][0])
    assert sum(p.numel() for p in fused.parameters()) > sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "overrides",
    [
        ("experiment=e03_two_layer_fusion",),
        ("fusion.use_contrastive_loss=true", "attention.use_cross_modal_attention=false"),
        ("regularization.cross_modal_dropout=0.3", "text.pooling=mean"),
    ],
)
def test_text_knobs_change_nothing_in_a_graph_only_model(data, overrides) -> None:
    info, batch = data["none"]

    def run(*extra: str) -> tuple:
        torch.manual_seed(0)
        model = build_model(compose(*DATA, "text=none", *extra), info).train()
        torch.manual_seed(1)
        out = model(batch)
        return [tuple(p.shape) for p in model.parameters()], out.prediction.detach()

    (shapes_a, pred_a), (shapes_b, pred_b) = run(), run(*overrides)
    assert shapes_a == shapes_b and torch.equal(pred_a, pred_b)


def test_a_model_is_built_only_for_the_modality_its_data_was_prepared_for(data) -> None:
    with pytest.raises(ValueError, match=r"prepared for a graph model but text\.enabled=True"):
        build_model(compose(*DATA), data["none"][0])
    with pytest.raises(ValueError, match=r"prepared for a graph\+text model"):
        build_model(compose(*DATA, "text=none"), data["tiny"][0])


@pytest.mark.parametrize("text", ["none", "tiny"])
def test_bf16_prediction_is_destandardised_in_float32(data, text: str) -> None:
    """Under bf16 autocast the head's output is bf16; the prediction in target units must not
    be rounded to bf16's ~3 significant digits (a mean of 1234.567 would lose ~2 units)."""
    info, batch = data[text]
    model = build_model(compose(*DATA, f"text={text}"), info).eval()
    model.set_normalizer(1234.567, 3.21)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
    assert out.normalized.dtype == torch.bfloat16  # the premise: the network ran in bf16
    assert out.prediction.dtype == torch.float32
    # the float32 path fed the same (bf16-rounded) standardised output
    expected = out.normalized.double() * 3.21 + 1234.567
    rel = ((out.prediction.double() - expected).abs() / expected.abs()).max()
    assert rel < 1e-5, f"relative error {float(rel):.2e}"


@pytest.mark.parametrize("text", ["none", "tiny"])
def test_trainer_bf16_autocasts_on_a_cpu_too(data, text: str) -> None:
    """``trainer.bf16=true`` runs the network in bf16 on a CPU as on CUDA (off CUDA it was
    silently ignored); the predictions stay close to the float32 ones."""
    from fusion_tuner.training.loop import autocast

    info, batch = data[text]
    model = build_model(compose(*DATA, f"text={text}"), info).eval()
    with torch.no_grad():
        ref = model(batch)
        with autocast(torch.device("cpu"), bf16=True):
            out = model(batch)
    assert ref.normalized.dtype == torch.float32
    assert out.normalized.dtype == torch.bfloat16 and out.prediction.dtype == torch.float32
    gap = (out.normalized.float() - ref.normalized).abs().max()
    assert gap < 0.05 * ref.normalized.abs().max().clamp_min(1.0), f"bf16 - float32: {gap:.3g}"
