"""One epoch of training, and evaluation: model, loader, optimizer in; floats out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from fusion_tuner.config import Config
from fusion_tuner.models.builders import total_loss


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R^2, max error and n, in the target's units."""
    err = prediction - target
    n = int(target.size)
    ss_tot = float(((target - target.mean()) ** 2).sum()) if n else 0.0
    return {
        "mae": float(np.abs(err).mean()) if n else float("nan"),
        "rmse": float(np.sqrt((err**2).mean())) if n else float("nan"),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else float("nan"),
        "max_error": float(np.abs(err).max()) if n else float("nan"),
        "n": n,
    }


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: Config,
    device: torch.device,
) -> dict[str, float]:
    """One pass over the training batches, stepping the schedule per optimizer step.

    Returns train_loss (task + weighted contrastive, crystal-weighted mean), train_mae (in
    train mode, in target units), contrastive_loss (or nan), crystals, seconds.
    """
    model.train()
    start = time.perf_counter()
    loss_sum = mae_sum = con_sum = 0.0
    n = 0
    for batch in batches:
        batch = batch.to(device)
        with autocast(device, cfg.trainer.bf16):
            out = model(batch)
            loss = total_loss(out, batch.y, model, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        b = batch.num_graphs
        n += b
        loss_sum += float(loss.detach()) * b
        mae_sum += float((out.prediction.detach().float() - batch.y).abs().sum())
        if out.contrastive_loss is not None:
            con_sum += float(out.contrastive_loss.detach()) * b
    return {
        "train_loss": loss_sum / max(n, 1),
        "train_mae": mae_sum / max(n, 1),
        "contrastive_loss": con_sum / n if cfg.fusion.use_contrastive_loss and n else float("nan"),
        "crystals": n,
        "seconds": time.perf_counter() - start,
    }


@dataclass
class Evaluation:
    """Predictions on one split plus their metrics (target units) and mean loss."""

    ids: list[str]
    target: np.ndarray
    prediction: np.ndarray
    metrics: dict[str, float]
    loss: float


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches: Iterable, cfg: Config, device: torch.device
) -> Evaluation:
    """Eval-mode predictions for every crystal of ``batches``, in loader order."""
    model.eval()
    ids: list[str] = []
    targets, preds = [], []
    loss_sum, n = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        with autocast(device, cfg.trainer.bf16):
            out = model(batch)
            loss = total_loss(out, batch.y, model, cfg)
        ids.extend(batch.sample_id)
        targets.append(batch.y.double().cpu().numpy())
        preds.append(out.prediction.double().cpu().numpy())
        loss_sum += float(loss) * batch.num_graphs
        n += batch.num_graphs
    target = np.concatenate(targets) if targets else np.zeros(0)
    prediction = np.concatenate(preds) if preds else np.zeros(0)
    return Evaluation(
        ids, target, prediction, regression_metrics(target, prediction), loss_sum / max(n, 1)
    )
