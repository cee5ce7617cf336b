"""BERT fine-tuned as BERT is: text.learning_rate groups, mean pooling for MatSciBERT."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fusion_tuner.config import SchedulerConfig, text_learning_rate, validate
from fusion_tuner.errors import ConfigError
from fusion_tuner.models.text import TextEncoder, tiny_bert
from fusion_tuner.training.optim import build_optimizer, build_scheduler
from tests.conftest import compose


def test_matscibert_composes_with_mean_pooling_and_its_own_rate() -> None:
    cfg = compose("text=matscibert")
    assert cfg.text.pooling == "mean"
    assert cfg.text.learning_rate == pytest.approx(3e-5)
    assert cfg.text.max_length == 512
    assert text_learning_rate(cfg) == pytest.approx(3e-5)
    assert compose("text=matscibert", "text.pooling=cls").text.pooling == "cls"
    # null: the pretrained encoder trains at the main rate
    assert text_learning_rate(compose("text=matscibert", "text.learning_rate=null")) is None


def test_tiny_encoder_trains_at_the_main_rate() -> None:
    cfg = compose()  # text=tiny: random init, trained from scratch
    assert cfg.text.learning_rate is None and text_learning_rate(cfg) is None
    # even when a rate is set: it applies to pretrained encoders only
    assert text_learning_rate(compose("text.learning_rate=1e-4")) is None
    assert text_learning_rate(compose("text=none", "+text.model_name_or_path=x")) is None


def test_text_learning_rate_must_be_positive() -> None:
    cfg = compose("text=matscibert")
    with pytest.raises(ConfigError, match=r"text.learning_rate=0.0 must be > 0"):
        validate(dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, learning_rate=0.0)))


class _Fused(nn.Module):
    def __init__(self, train_last: int) -> None:
        super().__init__()
        bert = tiny_bert(50, 16, 3, 2, 32, 16, 0)
        self.text_encoder = TextEncoder(bert, train_last_n_layers=train_last)
        self.head = nn.Sequential(nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 1))


def test_trainable_text_layers_get_their_own_groups_at_text_rate() -> None:
    model = _Fused(train_last=1)
    s = SchedulerConfig(optimizer="adamw", learning_rate=1e-3)
    opt = build_optimizer(model, s, 0.01, text_lr=3e-5)
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([1e-3, 1e-3, 3e-5, 3e-5])
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0, 0.01, 0.0]
    text_ids = {id(p) for p in model.text_encoder.trainable_layers()[0].parameters()}
    grouped = [{id(p) for p in g["params"]} for g in opt.param_groups]
    assert grouped[2] | grouped[3] == text_ids  # exactly the top layer, nothing frozen
    assert not (grouped[0] | grouped[1]) & text_ids
    assert grouped[0] | grouped[1] == {id(p) for p in model.head.parameters()}
    # without a text rate: two groups, the text layer among them at the main rate
    plain = build_optimizer(model, s, 0.01)
    assert len(plain.param_groups) == 2
    assert text_ids <= {id(p) for g in plain.param_groups for p in g["params"]}


def test_frozen_encoder_adds_no_text_group() -> None:
    model = _Fused(train_last=0)
    opt = build_optimizer(model, SchedulerConfig(), 0.01, text_lr=3e-5)
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("kind", ["onecycle", "cosine", "lambda", "torch_onecycle"])
def test_schedule_scales_both_rates_alike(kind: str) -> None:
    model = _Fused(train_last=2)
    s = SchedulerConfig(scheduler=kind, learning_rate=1e-3, warmup_steps=4, epochs=5)
    if kind == "torch_onecycle":  # torch's OneCycleLR itself (experiment=alignn_reference)
        s = SchedulerConfig(
            scheduler="onecycle", learning_rate=1e-3, epochs=5, pct_start=0.3, cycle_momentum=True
        )
    opt = build_optimizer(model, s, 0.0, text_lr=2e-5)
    sched = build_scheduler(opt, s, epochs=5, steps_per_epoch=4)
    seen = []
    for _ in range(20):
        main, text = opt.param_groups[0]["lr"], opt.param_groups[2]["lr"]
        assert text / main == pytest.approx(2e-5 / 1e-3)
        seen.append(text)
        opt.zero_grad()
        model.head(torch.zeros(1, 16)).sum().backward()
        opt.step()
        sched.step()
    assert seen[0] < 0.5 * 2e-5 and max(seen) == pytest.approx(2e-5)  # its own warm-up
