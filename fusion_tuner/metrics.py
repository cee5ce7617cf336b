"""Regression metrics in the target's units, shared by training, the sweep summary and analysis."""

from __future__ import annotations

from typing import Any

import numpy as np


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R^2, max error and n (NaN where undefined: no crystals, constant target)."""
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


def gap_ratio(val_mae: Any, train_mae: Any) -> Any:
    """Validation MAE / training MAE, the plan's overfitting measure (inf where train MAE is 0).

    Takes floats (returns a float) or arrays of per-epoch values (returns an array).
    """
    if np.ndim(val_mae) == 0 and np.ndim(train_mae) == 0:
        return float(val_mae) / float(train_mae) if train_mae > 0 else float("inf")
    val, train = np.asarray(val_mae, dtype=float), np.asarray(train_mae, dtype=float)
    return np.divide(
        val, train, out=np.full(np.broadcast(val, train).shape, np.inf), where=train > 0
    )
