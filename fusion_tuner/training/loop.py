"""One pass over a split: training (with optimizer steps) or evaluation. Both return an
:class:`~fusion_tuner.training.epoch.Evaluation`.

On several ranks (``dist.active``) each rank passes over its slices of the global batches
(:mod:`~fusion_tuner.training.sharding`) and the per-crystal results of all ranks are gathered,
so every rank returns the plain run's Evaluation (within float tolerance)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable

import numpy as np
import torch

from fusion_tuner.config import Config
from fusion_tuner.metrics import regression_metrics
from fusion_tuner.training.distributed import SINGLE, Dist
from fusion_tuner.training.epoch import Evaluation
from fusion_tuner.training.losses import shard_loss, total_loss


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the run's device (CUDA or CPU) when asked; nothing otherwise. On a CPU
    it pays only where the CPU multiplies bf16 natively (AVX512-BF16, AMX); elsewhere it is
    emulated and slower."""
    if bf16 and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
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

    def result(self, with_contrastive: bool) -> Evaluation:
        n = len(self.ids)
        target = np.concatenate(self.targets) if self.targets else np.zeros(0)
        prediction = np.concatenate(self.preds) if self.preds else np.zeros(0)
        return Evaluation(
            ids=self.ids,
            target=target,
            prediction=prediction,
            metrics=regression_metrics(target, prediction),
            loss=self.loss / max(n, 1),
            contrastive_loss=(
                self.contrastive / n
                if with_contrastive and self.has_contrastive and n
                else math.nan
            ),
            seconds=time.perf_counter() - self.start,
        )


class _ShardTally:
    """One rank's crystals of a sharded pass (ghosts left out); :meth:`result` gathers every
    rank's and orders them as the plain loader would (by position in the split)."""

    def __init__(self, dist: Dist, contrastive_weight: float) -> None:
        self.dist, self.contrastive_weight = dist, contrastive_weight
        self.ids: list[str] = []
        self.rows: list[np.ndarray] = []  # (n, 4): position, target, prediction, task loss
        self.contrastive = 0.0  # sum over global batches of InfoNCE x this rank's crystals
        self.start = time.perf_counter()

    def add(self, batch, out, task: torch.Tensor, contrastive: torch.Tensor | None) -> None:
        keep = (batch.shard_weight > 0).cpu().numpy()
        columns = (batch.shard_position, batch.y, out.prediction, task)
        rows = np.stack([c.detach().double().cpu().numpy() for c in columns], axis=1)
        self.rows.append(rows[keep])
        self.ids.extend(i for i, k in zip(batch.sample_id, keep, strict=True) if k)
        if contrastive is not None:
            self.contrastive += float(contrastive.detach()) * int(keep.sum())

    def result(self, with_contrastive: bool) -> Evaluation:
        seconds = time.perf_counter() - self.start
        mine = (self.ids, np.concatenate(self.rows) if self.rows else np.zeros((0, 4)))
        parts = self.dist.all_gather_object((mine, self.contrastive))
        ids = [i for (rank_ids, _), _ in parts for i in rank_ids]
        rows = np.concatenate([r for (_, r), _ in parts])
        order = np.argsort(rows[:, 0], kind="stable")
        ids, rows = [ids[i] for i in order], rows[order]
        n = len(ids)
        contrastive = sum(c for _, c in parts)
        target, prediction = rows[:, 1], rows[:, 2]
        return Evaluation(
            ids=ids,
            target=target,
            prediction=prediction,
            metrics=regression_metrics(target, prediction),
            loss=float(rows[:, 3].sum() + self.contrastive_weight * contrastive) / max(n, 1),
            contrastive_loss=contrastive / n if with_contrastive and n else math.nan,
            seconds=seconds,
        )


def _with_contrastive(cfg: Config) -> bool:
    """Whether the model computes a contrastive loss (never a graph-only one, ``text=none``)."""
    return cfg.fusion.use_contrastive_loss and cfg.text.enabled


def _forward(model: torch.nn.Module, batch, cfg: Config, device: torch.device) -> tuple:
    """Move a batch to ``device``; return it with the model's output and the loss."""
    # asynchronous from pinned memory (the loader pins batches on CUDA); a no-op on the CPU
    batch = batch.to(device, non_blocking=True)
    with autocast(device, cfg.trainer.bf16):
        out = model(batch)
        loss = total_loss(out, batch.y, model, cfg)
    return batch, out, loss


def _shard_forward(
    model: torch.nn.Module, call: torch.nn.Module, batch, cfg: Config, device, dist: Dist
) -> tuple:
    """``_forward`` of one rank's slice: ``call`` (the DDP wrapper when training) computes the
    output, ``model`` the normalisation; returns the batch, output and :class:`ShardLoss`."""
    batch = batch.to(device)
    with autocast(device, cfg.trainer.bf16):
        out = call(batch)
        loss = shard_loss(out, batch, model, cfg, dist)
    return batch, out, loss


def _tally(cfg: Config, dist: Dist) -> _Tally | _ShardTally:
    return _ShardTally(dist, cfg.fusion.contrastive_loss_weight) if dist.active else _Tally()


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: Config,
    device: torch.device,
    dist: Dist = SINGLE,
    wrapped: torch.nn.Module | None = None,
) -> Evaluation:
    """One pass over the training batches, stepping the schedule per optimizer step; metrics
    are of the train-mode predictions made along the way.

    Args:
        dist: this rank (several ranks: ``batches`` are its slices, see ``sharding``).
        wrapped: what computes the forward pass on several ranks (the DDP wrapper of ``model``).
    """
    model.train()
    tally = _tally(cfg, dist)
    for batch in batches:
        if dist.active:
            batch, out, shard = _shard_forward(model, wrapped or model, batch, cfg, device, dist)
            loss = shard.objective
        else:
            batch, out, loss = _forward(model, batch, cfg, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        if dist.active:
            tally.add(batch, out, shard.task, shard.contrastive)
        else:
            tally.add(batch, out, loss)
    return tally.result(_with_contrastive(cfg))


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable,
    cfg: Config,
    device: torch.device,
    dist: Dist = SINGLE,
) -> Evaluation:
    """Eval-mode predictions for every crystal of ``batches``, in loader order (several ranks:
    ``batches`` are this rank's slices; every rank returns the whole split's Evaluation)."""
    model.eval()
    tally = _tally(cfg, dist)
    for batch in batches:
        if dist.active:
            batch, out, shard = _shard_forward(model, model, batch, cfg, device, dist)
            tally.add(batch, out, shard.task, shard.contrastive)
        else:
            tally.add(*_forward(model, batch, cfg, device))
    return tally.result(_with_contrastive(cfg))
