"""One pass over a split: training (with optimizer steps) or evaluation. Both return an
:class:`~fusion_tuner.training.epoch.Evaluation`."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable

import numpy as np
import torch

from fusion_tuner.config import Config
from fusion_tuner.metrics import regression_metrics
from fusion_tuner.training.epoch import Evaluation
from fusion_tuner.training.losses import total_loss


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; nothing otherwise."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Tally:
    """Accumulates per-crystal predictions and crystal-weighted losses over batches."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.targets: list[np.ndarray] = []
        self.preds: list[np.ndarray] = []
        self.loss = self.contrastive = 0.0
        self.has_contrastive = False  # the model computed one (never with text=none)
        self.start = time.perf_counter()

    def add(self, batch, out, loss: torch.Tensor) -> None:
        b = batch.num_graphs
        self.ids.extend(batch.sample_id)
        self.targets.append(batch.y.detach().double().cpu().numpy())
        self.preds.append(out.prediction.detach().double().cpu().numpy())
        self.loss += float(loss.detach()) * b
        if out.contrastive_loss is not None:
            self.contrastive += float(out.contrastive_loss.detach()) * b
            self.has_contrastive = True

    def result(self) -> Evaluation:
        n = len(self.ids)
        target = np.concatenate(self.targets) if self.targets else np.zeros(0)
        prediction = np.concatenate(self.preds) if self.preds else np.zeros(0)
        return Evaluation(
            ids=self.ids,
            target=target,
            prediction=prediction,
            metrics=regression_metrics(target, prediction),
            loss=self.loss / max(n, 1),
            contrastive_loss=self.contrastive / n if self.has_contrastive and n else math.nan,
            seconds=time.perf_counter() - self.start,
        )


def _forward(model: torch.nn.Module, batch, cfg: Config, device: torch.device) -> tuple:
    """Move a batch to ``device``; return it with the model's output and the loss."""
    # asynchronous from pinned memory (the loader pins batches on CUDA); a no-op on the CPU
    batch = batch.to(device, non_blocking=True)
    with autocast(device, cfg.trainer.bf16):
        out = model(batch)
        loss = total_loss(out, batch.y, model, cfg)
    return batch, out, loss


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: Config,
    device: torch.device,
) -> Evaluation:
    """One pass over the training batches, stepping the schedule per optimizer step; metrics
    are of the train-mode predictions made along the way."""
    model.train()
    tally = _Tally()
    for batch in batches:
        batch, out, loss = _forward(model, batch, cfg, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        tally.add(batch, out, loss)
    return tally.result()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches: Iterable, cfg: Config, device: torch.device
) -> Evaluation:
    """Eval-mode predictions for every crystal of ``batches``, in loader order."""
    model.eval()
    tally = _Tally()
    for batch in batches:
        tally.add(*_forward(model, batch, cfg, device))
    return tally.result()
