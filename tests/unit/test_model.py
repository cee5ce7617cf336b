"""The fused model: stages, shapes, switches, and that every model knob of the plan is live."""

from __future__ import annotations

import pytest
import torch

from fusion_tuner.models.builders import build_model
from fusion_tuner.models.property import STAGES
from fusion_tuner.training.losses import total_loss
from tests.conftest import compose

DATA = ("dataset.demo_size=40", "text.max_length=48")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fusion_tuner import build_datamodule

    cache = tmp_path_factory.mktemp("model_cache")
    dm = build_datamodule(compose(*DATA, cache=cache))
    batch = next(iter(dm.loader("train", batch_size=6, shuffle=False)))
    return dm.info, batch


def signature(info, batch, *overrides: str) -> dict:
    """Everything a knob could change, with the same seeds and inputs."""
    cfg = compose(*DATA, *overrides)
    torch.manual_seed(0)
    model = build_model(cfg, info)
    model.train()
    torch.manual_seed(1)
    out = model(batch)
    loss = total_loss(out, batch.y, model, cfg)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "shapes": tuple((n, tuple(p.shape)) for n, p in model.named_parameters()),
        "prediction": out.prediction.detach(),
        "loss": float(loss.detach()),
        "stages": tuple(out.stages),
    }


def differs(a: dict, b: dict) -> list[str]:
    changed = [k for k in ("params", "trainable", "shapes", "stages", "loss") if a[k] != b[k]]
    if not torch.allclose(a["prediction"], b["prediction"], atol=1e-6):
        changed.append("prediction")
    return changed


# (override that changes one knob to a value the plan suggests, the baseline it is compared with)
MODEL_KNOBS = [
    ("regularization.graph_dropout=0.25", ()),
    ("regularization.cross_modal_dropout=0.2", ()),
    ("regularization.fine_grained_dropout=0.3", ()),
    ("regularization.middle_fusion_dropout=0.2", ()),
    ("fusion.use_middle_fusion=false", ()),
    ('fusion.middle_fusion_layers="2,3"', ()),
    ('fusion.middle_fusion_layers="1,2"', ('fusion.middle_fusion_layers="2,3"',)),
    ("fusion.middle_fusion_hidden_dim=256", ()),
    ("fusion.middle_fusion_num_heads=4", ()),
    ("fusion.use_contrastive_loss=true", ()),
    ("fusion.contrastive_loss_weight=0.5", ("fusion.use_contrastive_loss=true",)),
    ("fusion.contrastive_temperature=0.5", ("fusion.use_contrastive_loss=true",)),
    ("attention.cross_modal_num_heads=2", ()),
    ("attention.fine_grained_num_heads=4", ()),
    ("attention.cross_modal_hidden_dim=128", ()),
    ("attention.fine_grained_hidden_dim=128", ()),
    ("attention.use_cross_modal_attention=false", ()),
    ("attention.use_fine_grained_attention=false", ()),
    ("arch.alignn_layers=3", ()),
    ("arch.gcn_layers=3", ()),
    ("arch.hidden_features=128", ()),
    ("arch.embedding_features=32", ()),
    ("text.freeze=true", ()),
    ("text.train_last_n_layers=1", ()),
    ("text.pooling=mean", ()),
    ("dataset.bond_rbf_bins=40", ()),
    ("dataset.angle_rbf_bins=20", ()),
    ("trainer.loss=l1", ()),
]


@pytest.mark.parametrize(("override", "base"), MODEL_KNOBS, ids=[k for k, _ in MODEL_KNOBS])
def test_every_model_knob_is_live(data, override: str, base: tuple[str, ...]) -> None:
    info, batch = data
    assert differs(signature(info, batch, *base), signature(info, batch, *base, override)), (
        f"{override} changed nothing: a dead knob"
    )


def test_same_config_same_seed_is_reproducible(data) -> None:
    info, batch = data
    assert differs(signature(info, batch), signature(info, batch)) == []


def test_stages_have_documented_names_and_shapes(data) -> None:
    info, batch = data
    cfg = compose(
        *DATA, "attention.fine_grained_hidden_dim=128", "attention.cross_modal_hidden_dim=64"
    )
    model = build_model(cfg, info).eval()
    out = model(batch)
    shapes = {k: tuple(v.shape) for k, v in out.stages.items()}
    assert shapes == {
        "graph": (6, 256),
        "text": (6, 64),
        "graph_fine": (6, 128),
        "text_fine": (6, 128),
        "graph_final": (6, 64),
        "text_final": (6, 64),
        "fused": (6, 128),
    }
    assert tuple(out.stages) == STAGES
    assert out.prediction.shape == (6,) and out.contrastive_loss is None


@pytest.mark.parametrize(
    ("overrides", "absent", "module"),
    [
        (
            ("attention.use_fine_grained_attention=false",),
            {"graph_fine", "text_fine"},
            "fine_grained",
        ),
        (
            ("attention.use_cross_modal_attention=false",),
            {"graph_final", "text_final"},
            "cross_modal",
        ),
        (("fusion.use_middle_fusion=false",), set(), "middle_fusion"),
    ],
)
def test_switching_off_removes_stages_and_parameters(data, overrides, absent, module) -> None:
    info, batch = data
    model = build_model(compose(*DATA, *overrides), info).eval()
    out = model(batch)
    assert absent.isdisjoint(out.stages)
    assert set(STAGES) - absent == set(out.stages)
    assert not any(n.startswith(module + ".") for n, _ in model.named_parameters())


def test_every_parameter_receives_a_gradient(data) -> None:
    info, batch = data
    cfg = compose(*DATA, "fusion.use_contrastive_loss=true", 'fusion.middle_fusion_layers="1,2,3"')
    model = build_model(cfg, info).train()
    out = model(batch)
    total_loss(out, batch.y, model, cfg).backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert dead == []


def test_prediction_is_in_target_units(data) -> None:
    info, batch = data
    model = build_model(compose(*DATA), info).eval()
    model.set_normalizer(3.0, 2.0)
    out = model(batch)
    torch.testing.assert_close(out.prediction, out.normalized * 2.0 + 3.0)
