"""curves.png: loss and MAE, train vs validation, best and stop epochs, and the train-val gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_curves(
    history: list[dict[str, Any]], best_epoch: int, path: Path, title: str = ""
) -> None:
    """Three panels: loss, MAE (train vs val) and the gap ratio val MAE / train MAE per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.array([row["epoch"] for row in history])
    col = {
        k: np.array([float(row[k]) for row in history])
        for k in ("train_loss", "val_loss", "train_mae", "val_mae")
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, label in (
        (axes[0], "loss", "loss (standardised target)"),
        (axes[1], "mae", "MAE (target units)"),
    ):
        ax.plot(epochs, col[f"train_{key}"], label="train", color="tab:blue")
        ax.plot(epochs, col[f"val_{key}"], label="validation", color="tab:orange")
        if key == "mae":
            ax.fill_between(
                epochs,
                col["train_mae"],
                col["val_mae"],
                color="tab:red",
                alpha=0.12,
                label="train-val gap",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    gap = col["val_mae"] / np.maximum(col["train_mae"], 1e-12)
    axes[2].plot(epochs, gap, color="tab:red")
    axes[2].axhline(2.0, color="grey", ls=":", label="target gap 2x")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("val MAE / train MAE")
    stop = int(epochs[-1]) if len(epochs) else 0
    for ax in axes:
        if best_epoch >= 0:
            ax.axvline(best_epoch, color="green", ls="--", label=f"best epoch {best_epoch}")
        ax.axvline(stop, color="black", ls=":", label=f"stop epoch {stop}")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
