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


# A run whose skill against the training-mean predictor is below this learned nothing usable:
# its MAE is within 10 % of predicting the training targets' mean for every crystal.
MIN_SKILL = 0.1


def skill_metrics(
    target: np.ndarray, prediction: np.ndarray, train_mean: float
) -> dict[str, float]:
    """The run against the training-mean predictor on one split.

    Returns ``mean_predictor_mae`` (the MAE of predicting ``train_mean`` for every crystal) and
    ``skill = 1 − MAE / mean_predictor_mae`` (1: perfect, 0: no better than the mean, negative:
    worse; NaN where undefined: no crystals, or every target equal to ``train_mean``).
    """
    n = int(target.size)
    if not n:
        return {"mean_predictor_mae": float("nan"), "skill": float("nan")}
    base = float(np.abs(target - train_mean).mean())
    mae = float(np.abs(prediction - target).mean())
    return {"mean_predictor_mae": base, "skill": 1.0 - mae / base if base > 0 else float("nan")}


def learned_nothing(skill: Any) -> bool:
    """True when ``skill`` (see :func:`skill_metrics`) is below :data:`MIN_SKILL`."""
    try:
        value = float(skill)
    except (TypeError, ValueError):
        return False
    return value == value and value < MIN_SKILL


def skill_words(metrics: dict[str, Any]) -> str:
    """The skill part of a run's ``done:`` line, from its ``metrics.json`` content, e.g.
    ``skill val 0.42 / test 0.40 against the training-mean predictor (R² 0.61 / 0.58)``, with
    ``LEARNED NOTHING`` in front when the validation skill is below :data:`MIN_SKILL`."""
    val, test = metrics.get("val") or {}, metrics.get("test") or {}

    def num(x: Any) -> str:
        return "n/a" if x is None or x != x else f"{x:.2f}"

    def mae(x: Any) -> str:
        return "n/a" if x is None or x != x else f"{x:.4g}"

    words = (
        f"skill val {num(val.get('skill'))} / test {num(test.get('skill'))} against the "
        f"training-mean predictor (R² {num(val.get('r2'))} / {num(test.get('r2'))})"
    )
    if learned_nothing(val.get("skill")):
        words = (
            f"LEARNED NOTHING: validation MAE {mae(val.get('mae'))} against "
            f"{mae(val.get('mean_predictor_mae'))} for predicting the training mean; " + words
        )
    return words


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
