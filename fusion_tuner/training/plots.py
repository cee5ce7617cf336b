"""Training curves: MAE and loss (train vs validation) and the gap ratio per epoch, for one run
(each run's ``curves.png``) or several overlaid (``analyze curves``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.metrics import gap_ratio

CurveRun = tuple[str, Sequence[dict[str, Any]], int]  # (name, history rows, best epoch)


def _eval_mae(row: dict[str, Any]) -> float:
    """The eval-mode training MAE of a history row; the running one for rows from before it."""
    value = row.get("train_eval_mae")
    return float(row["train_mae"]) if value in (None, "") else float(value)


def history_columns(history: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Epochs, losses and MAEs of ``history`` rows (from ``history.csv`` or ``last.pt``) as
    arrays, plus the per-epoch gap ratio. ``train_mae`` is the eval-mode MAE on the fixed
    training subset (the one the gap ratio uses everywhere); ``train_running_mae`` the running
    train-mode MAE of the epoch."""
    col = {
        k: np.array([float(r[k]) for r in history])
        for k in ("epoch", "train_loss", "val_loss", "val_mae")
    }
    col["train_running_mae"] = np.array([float(r["train_mae"]) for r in history])
    col["train_mae"] = np.array([_eval_mae(r) for r in history])
    col["gap"] = gap_ratio(col["val_mae"], col["train_mae"])
    return col


def plot_curves(runs: Sequence[CurveRun], path: Path, title: str = "") -> None:
    """Three panels (MAE, loss, gap ratio); per run: train dashed, validation solid, the best
    epoch dotted, the stop epoch marked ×. A single run also shades the train–val gap."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for k, (name, history, best_epoch) in enumerate(runs):
        col, color = history_columns(history), f"C{k % 10}"
        ep = col["epoch"]
        for ax, key in ((axes[0], "mae"), (axes[1], "loss")):
            mode = " (eval mode)" if key == "mae" else ""
            ax.plot(
                ep, col[f"train_{key}"], color=color, ls="--", lw=1, label=f"{name} train{mode}"
            )
            ax.plot(ep, col[f"val_{key}"], color=color, lw=1.6, label=f"{name} val")
            if best_epoch >= 0:
                ax.axvline(best_epoch, color=color, ls=":", lw=1)
            if len(ep):
                ax.plot([ep[-1]], [col[f"val_{key}"][-1]], marker="x", color=color)
        if len(runs) == 1:
            axes[0].fill_between(
                ep,
                col["train_mae"],
                col["val_mae"],
                color="tab:red",
                alpha=0.12,
                label="train–val gap",
            )
        axes[2].plot(ep, col["gap"], color=color, label=name)
    axes[0].set_ylabel("MAE (target units)")
    axes[1].set_ylabel("loss (standardised target)")
    axes[2].set_ylabel("val MAE / train MAE")
    axes[2].axhline(2.0, color="grey", ls=":", lw=1, label="target gap 2×")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    subtitle = "dashed: train, solid: validation, dotted line: best epoch, ×: stop epoch"
    fig.suptitle(f"{title}\n{subtitle}" if title else subtitle)
    fig.tight_layout()
    save_figure(fig, path)
