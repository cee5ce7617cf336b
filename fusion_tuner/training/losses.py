"""The training loss: the task loss on the model's target scale (standardised, or raw with
``trainer.target_scale=raw``: normaliser 0 and 1), plus the contrastive term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fusion_tuner.config import Config
from fusion_tuner.models.fusion import info_nce
from fusion_tuner.models.property import FusionPropertyModel, ModelOutput
from fusion_tuner.training.distributed import Dist, global_rows


def total_loss(
    out: ModelOutput, y: torch.Tensor, model: FusionPropertyModel, cfg: Config
) -> torch.Tensor:
    """``trainer.loss`` (mse | l1 | huber) on the standardised target, plus
    ``fusion.contrastive_loss_weight`` x InfoNCE when the contrastive loss is on."""
    target = model.normalize(y)
    if cfg.trainer.loss == "mse":
        loss = F.mse_loss(out.normalized, target)
    elif cfg.trainer.loss == "l1":
        loss = F.l1_loss(out.normalized, target)
    else:
        loss = F.huber_loss(out.normalized, target, delta=cfg.trainer.huber_delta)
    if out.contrastive_loss is not None:
        loss = loss + cfg.fusion.contrastive_loss_weight * out.contrastive_loss
    return loss


def task_losses(
    out: ModelOutput, y: torch.Tensor, model: FusionPropertyModel, cfg: Config
) -> torch.Tensor:
    """(B,) ``trainer.loss`` of each crystal on the standardised target (their mean is
    :func:`total_loss`'s task part)."""
    target = model.normalize(y)
    if cfg.trainer.loss == "mse":
        return F.mse_loss(out.normalized, target, reduction="none")
    if cfg.trainer.loss == "l1":
        return F.l1_loss(out.normalized, target, reduction="none")
    return F.huber_loss(out.normalized, target, delta=cfg.trainer.huber_delta, reduction="none")


@dataclass
class ShardLoss:
    """One rank's share of a global batch's loss.

    Attributes:
        objective: what this rank back-propagates; DDP's average of it over the ranks has the
            gradient of the plain run's loss on the whole global batch.
        task: (n,) the task loss of each of this rank's crystals (ghosts included, weight 0).
        contrastive: the InfoNCE of the whole global batch (the same on every rank), or None.
    """

    objective: torch.Tensor
    task: torch.Tensor
    contrastive: torch.Tensor | None


def shard_loss(
    out: ModelOutput, batch, model: FusionPropertyModel, cfg: Config, dist: Dist
) -> ShardLoss:
    """The loss of this rank's slice of a global batch (see :mod:`~fusion_tuner.training.sharding`).

    The task part is ``sum(weight x loss) x world / B`` (B: the global batch's size), so DDP's
    mean over ranks is the plain run's mean over the batch, also for an uneven last batch and a
    ghost (weight 0). The contrastive InfoNCE is computed over the whole global batch from every
    rank's projections (:func:`~fusion_tuner.training.sharding.global_rows`), so its negatives
    are the plain run's; its term is scaled by ``world`` for DDP's mean.
    """
    weight = batch.shard_weight.to(out.normalized.dtype)
    size = int(batch.shard_size[0])
    task = task_losses(out, batch.y, model, cfg)
    objective = (task * weight).sum() * (dist.world / size)
    contrastive = None
    if out.contrastive_pair is not None:
        graph, text = (global_rows(t, weight, size, dist) for t in out.contrastive_pair)
        contrastive = info_nce(graph, text, float(model.contrastive_temperature))
        objective = objective + cfg.fusion.contrastive_loss_weight * dist.world * contrastive
    return ShardLoss(objective, task, contrastive)
