"""One epoch, described once: the record behind ``history.csv``, W&B and the console line."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from fusion_tuner.metrics import gap_ratio

# The most training crystals evaluated in eval mode after every epoch (for the gap ratio).
TRAIN_EVAL_CRYSTALS = 2000


def train_eval_ids(ids: list[str], limit: int = TRAIN_EVAL_CRYSTALS) -> list[str]:
    """The fixed training subset evaluated every epoch: all of ``ids`` up to ``limit``, else
    ``limit`` of them evenly spaced in the split's order (the same every epoch and resume)."""
    if len(ids) <= limit:
        return list(ids)
    return [ids[i * len(ids) // limit] for i in range(limit)]


@dataclass(frozen=True)
class Evaluation:
    """One pass over a split (training or evaluation): per-crystal predictions, metrics in the
    target's units, the mean loss and, for training passes, the contrastive part and timing.

    Attributes:
        ids (list[str]): crystal ids, in loader order.
        target, prediction (np.ndarray): (n,) in target units.
        metrics (dict): ``regression_metrics`` of the pass (training: in train mode).
        loss (float): crystal-weighted mean of the loss (task + weighted contrastive).
        contrastive_loss (float): crystal-weighted mean InfoNCE, NaN when it is off.
        seconds (float): wall time of the pass.
    """

    ids: list[str]
    target: Any
    prediction: Any
    metrics: dict[str, float]
    loss: float
    contrastive_loss: float = math.nan
    seconds: float = 0.0

    @property
    def crystals(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class EpochRecord:
    """Everything known about one finished epoch; ``history.csv`` has one column per field.

    ``train_mae`` is the running training MAE of the epoch (train mode: dropout on, the weights
    changing); ``train_eval_mae`` is the MAE of the epoch's final weights in eval mode on a fixed
    subset of the training split (:data:`TRAIN_EVAL_CRYSTALS` at most), and ``gap_ratio`` is
    ``val_mae / train_eval_mae``: the same measure ``metrics.json`` reports for the best epoch.
    """

    epoch: int
    train_loss: float
    train_mae: float
    train_eval_mae: float
    val_loss: float
    val_mae: float
    lr: float
    contrastive_loss: float
    epoch_seconds: float
    val_rmse: float
    val_r2: float
    best_val_mae: float
    gap_ratio: float

    @classmethod
    def of(
        cls,
        epoch: int,
        train: Evaluation,
        train_eval: Evaluation,
        val: Evaluation,
        lr: float,
        best_val_mae: float,
    ) -> EpochRecord:
        return cls(
            epoch=epoch,
            train_loss=train.loss,
            train_mae=train.metrics["mae"],
            train_eval_mae=train_eval.metrics["mae"],
            val_loss=val.loss,
            val_mae=val.metrics["mae"],
            lr=lr,
            contrastive_loss=train.contrastive_loss,
            epoch_seconds=train.seconds,
            val_rmse=val.metrics["rmse"],
            val_r2=val.metrics["r2"],
            best_val_mae=best_val_mae,
            gap_ratio=gap_ratio(val.metrics["mae"], train_eval.metrics["mae"]),
        )

    def row(self) -> dict[str, Any]:
        """The ``history.csv`` row (also what ``last.pt`` keeps as history)."""
        return asdict(self)

    def tracked(self) -> dict[str, float]:
        """The metrics sent to the experiment tracker (W&B names)."""
        return {
            "epoch": self.epoch,
            "train/loss": self.train_loss,
            "train/mae": self.train_mae,
            "train/mae_eval": self.train_eval_mae,
            "val/loss": self.val_loss,
            "val/mae": self.val_mae,
            "val/mae_best": self.best_val_mae,
            "lr": self.lr,
            "train/contrastive_loss": self.contrastive_loss,
            "gap_ratio": self.gap_ratio,
        }

    def console(self, max_epochs: int, best_epoch: int) -> str:
        return (
            f"epoch {self.epoch}/{max_epochs} train_loss {self.train_loss:.4f} "
            f"train_mae {self.train_mae:.4f} (eval {self.train_eval_mae:.4f}) val_mae {self.val_mae:.4f} "
            f"best {self.best_val_mae:.4f}@{best_epoch} lr {self.lr:.2e} "
            f"({self.epoch_seconds:.1f}s)"
        )


HISTORY_COLUMNS = tuple(f.name for f in fields(EpochRecord))
