"""Optimiser with decay / no-decay groups, and per-step learning-rate schedules.

Every schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` stepped once per optimizer step,
with ``total = epochs x steps_per_epoch`` steps (``epochs`` after the budget cap):

* ``onecycle``: rises from ``lr/25`` to ``lr`` over ``warmup_steps`` (cosine-shaped, as
  ``torch.optim.lr_scheduler.OneCycleLR``), then cosine-anneals to ``lr/(25 * 1e4)`` at
  ``total``. If ``warmup_steps >= total`` the run only rises (the log says so). With
  ``pct_start`` set or ``cycle_momentum`` on, the schedule is torch's ``OneCycleLR`` itself
  (rising phase ``pct_start`` of the run, else ``warmup_steps / total``; momentum cycled between
  ``base_momentum`` and ``max_momentum`` when ``cycle_momentum``), as upstream ALIGNN uses it.
* ``lambda``: linear warm-up ``lr * (step + 1) / warmup_steps`` for ``warmup_steps`` steps,
  then constant ``lr``.
* ``cosine``: the same linear warm-up, then cosine decay from ``lr`` to
  ``min_lr_ratio * lr`` at ``total``.
* ``step``: the same linear warm-up, then ``lr * step_gamma ** (epoch // step_size)``.
* ``none``: constant ``lr``; ``warmup_steps`` is not used (the log says so when it is set).

A pretrained text encoder's trainable weights (``text.learning_rate``, see
:func:`fusion_tuner.config.text_learning_rate`) form their own groups at that rate; the schedule
multiplies every group's rate by the same factor, so they warm up and decay with the rest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from fusion_tuner.config import SchedulerConfig

log = logging.getLogger(__name__)


def _split_decay(params: list[nn.Parameter]) -> tuple[list, list]:
    decay = [p for p in params if p.dim() >= 2]
    return decay, [p for p in params if p.dim() < 2]


def param_groups(model: nn.Module, weight_decay: float, text_lr: float | None = None) -> list[dict]:
    """Weight decay on weight matrices (``dim >= 2``) only; biases and norm scales get none.

    Args:
        text_lr: when set, the trainable parameters of ``model.text_encoder`` form two more
            groups (with and without decay) at this learning rate; the first two groups are
            the rest of the model, at the optimizer's rate.
    """
    encoder = getattr(model, "text_encoder", None) if text_lr is not None else None
    text_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay, no_decay = _split_decay([p for p in trainable if id(p) not in text_ids])
    log.info(
        "optimizer groups: %d tensors (%d values) with weight decay %g, %d tensors (%d) without",
        len(decay),
        sum(p.numel() for p in decay),
        weight_decay,
        len(no_decay),
        sum(p.numel() for p in no_decay),
    )
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    text_params = [p for p in trainable if id(p) in text_ids]
    if text_params:
        t_decay, t_no_decay = _split_decay(text_params)
        log.info(
            "optimizer groups of the pretrained text encoder at text.learning_rate=%g: "
            "%d tensors (%d values)",
            text_lr,
            len(text_params),
            sum(p.numel() for p in text_params),
        )
        groups += [
            {"params": t_decay, "weight_decay": weight_decay, "lr": text_lr},
            {"params": t_no_decay, "weight_decay": 0.0, "lr": text_lr},
        ]
    return groups


def build_optimizer(
    model: nn.Module, s: SchedulerConfig, weight_decay: float, text_lr: float | None = None
) -> torch.optim.Optimizer:
    """``scheduler.optimizer`` over :func:`param_groups` at ``scheduler.learning_rate`` (a
    pretrained text encoder's trainable weights at ``text_lr`` when given)."""
    groups = param_groups(model, weight_decay, text_lr)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.learning_rate)
    if s.optimizer == "adam":  # Adam's weight_decay is an L2 penalty added to the gradient
        return torch.optim.Adam(groups, lr=s.learning_rate)
    return torch.optim.SGD(groups, lr=s.learning_rate, momentum=s.momentum)


def lr_factor(s: SchedulerConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of ``learning_rate`` at each optimizer step, for ``scheduler.scheduler``."""
    warm = s.warmup_steps
    if s.scheduler == "none":
        return lambda step: 1.0
    if s.scheduler == "onecycle":
        start, end = 1.0 / 25.0, 1.0 / (25.0 * 1e4)

        def onecycle(step: int) -> float:
            if step < warm:
                return start + (1.0 - start) * (1 - math.cos(math.pi * step / warm)) / 2
            frac = min(1.0, (step - warm) / max(1, total_steps - warm))
            return end + (1.0 - end) * (1 + math.cos(math.pi * frac)) / 2

        return onecycle

    def warmup(step: int) -> float | None:
        return (step + 1) / warm if step < warm else None

    if s.scheduler == "lambda":
        return lambda step: warmup(step) or 1.0
    if s.scheduler == "cosine":

        def cosine(step: int) -> float:
            w = warmup(step)
            if w is not None:
                return w
            frac = min(1.0, (step - warm) / max(1, total_steps - warm))
            return s.min_lr_ratio + (1 - s.min_lr_ratio) * (1 + math.cos(math.pi * frac)) / 2

        return cosine
    return lambda step: warmup(step) or s.step_gamma ** ((step // steps_per_epoch) // s.step_size)


def uses_torch_onecycle(s: SchedulerConfig) -> bool:
    """True when the schedule is torch's ``OneCycleLR`` (``pct_start`` or ``cycle_momentum``)."""
    return s.scheduler == "onecycle" and (s.pct_start is not None or s.cycle_momentum)


def build_scheduler(
    optimizer: torch.optim.Optimizer, s: SchedulerConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step scheduler over ``epochs x steps_per_epoch`` steps (see the module docstring)."""
    total = epochs * steps_per_epoch
    if uses_torch_onecycle(s):
        pct = s.pct_start if s.pct_start is not None else min(1.0, s.warmup_steps / total)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            # each group's own peak (a pretrained text encoder's text.learning_rate); a resumed
            # optimizer's groups carry the max_lr that OneCycleLR recorded in them
            max_lr=[g.get("max_lr", g["lr"]) for g in optimizer.param_groups],
            total_steps=total,
            pct_start=pct,
            anneal_strategy="cos",
            cycle_momentum=s.cycle_momentum,
            base_momentum=s.base_momentum,
            max_momentum=s.max_momentum,
            div_factor=25.0,
            final_div_factor=1e4,
        )
    if s.scheduler == "none" and s.warmup_steps:
        log.warning("scheduler=none keeps lr constant: warmup_steps=%d is not used", s.warmup_steps)
    if s.scheduler != "none" and s.warmup_steps >= total:
        log.warning(
            "warmup_steps=%d >= the run's %d optimizer steps (%d epochs x %d): the learning rate "
            "never finishes warming up",
            s.warmup_steps,
            total,
            epochs,
            steps_per_epoch,
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(s, total, steps_per_epoch))
