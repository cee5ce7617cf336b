"""The training loss: the task loss on the standardised target, plus the contrastive term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fusion_tuner.config import Config
from fusion_tuner.models.property import FusionPropertyModel, ModelOutput


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
