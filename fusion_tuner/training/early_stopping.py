"""Early stopping on validation MAE that can actually fire."""

from __future__ import annotations

import math
from typing import Any


class EarlyStopping:
    """Count epochs since the monitored value last beat the best by more than ``min_delta``.

    ``step(value)`` returns True once ``patience`` epochs in a row failed to improve on the best
    value by more than ``min_delta``. Wiggles smaller than ``min_delta`` neither reset the counter
    nor move the best value, so a noisy plateau stops instead of running forever.

    Args:
        patience (int): ``n_early_stopping``, in epochs.
        min_delta (float): the improvement that counts, in the metric's units.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.counter = 0

    def step(self, value: float, epoch: int) -> bool:
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.counter = value, epoch, 0
        else:
            self.counter += 1
        return self.counter >= self.patience

    def can_fire(self, max_epochs: int) -> bool:
        """False when the run ends before ``patience`` non-improving epochs can ever accumulate."""
        return self.patience < max_epochs

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "counter": self.counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.counter = (
            state["best"],
            state["best_epoch"],
            state["counter"],
        )
