"""``analyze curves RUN_DIR...``: training curves of several runs overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.report import pyplot, savefig, table, write_outputs
from fusion_tuner.analysis.runs import locate


def run_curves(run_dirs: list[str], out: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Overlay train/val MAE and loss, mark best and stop epochs, plot the gap ratio per epoch."""
    runs = [locate(d, names[i] if names else None) for i, d in enumerate(run_dirs)]
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    summary: dict[str, Any] = {"runs": {}}
    rows = []
    for k, run in enumerate(runs):
        hist = run.history()
        ep = np.array([int(r["epoch"]) for r in hist])
        col = {
            c: np.array([float(r[c]) for r in hist])
            for c in ("train_mae", "val_mae", "train_loss", "val_loss")
        }
        gap = col["val_mae"] / np.maximum(col["train_mae"], 1e-12)
        color = f"C{k % 10}"
        best_i = int(np.argmin(col["val_mae"]))
        metrics = run.metrics
        best_epoch = int(metrics.get("best_epoch", ep[best_i]))
        for ax, key in ((axes[0], "mae"), (axes[1], "loss")):
            ax.plot(ep, col[f"train_{key}"], color=color, ls="--", lw=1, label=f"{run.name} train")
            ax.plot(ep, col[f"val_{key}"], color=color, lw=1.6, label=f"{run.name} val")
            ax.axvline(best_epoch, color=color, ls=":", lw=1)
            ax.plot([ep[-1]], [col[f"val_{key}"][-1]], marker="x", color=color)
        axes[2].plot(ep, gap, color=color, label=run.name)
        info = {
            "best_epoch": best_epoch, "stop_epoch": int(ep[-1]), "stop_reason": metrics.get("stop_reason"),
            "best_val_mae": float(col["val_mae"][best_i]), "train_mae_at_best": float(col["train_mae"][best_i]),
            "gap_ratio_at_best": float(gap[best_i]), "final_gap_ratio": float(gap[-1]),
            "gap_trend": float(gap[-1] - gap[best_i]),
        }  # fmt: skip
        summary["runs"][run.name] = info
        rows.append([run.name, info["best_epoch"], info["stop_epoch"], info["stop_reason"],
                     info["best_val_mae"], info["train_mae_at_best"], info["gap_ratio_at_best"],
                     info["final_gap_ratio"]])  # fmt: skip
    axes[0].set_ylabel("MAE (target units)")
    axes[1].set_ylabel("loss (standardised target)")
    axes[2].set_ylabel("val MAE / train MAE")
    axes[2].axhline(2.0, color="grey", ls=":", lw=1)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle("dashed: train, solid: validation, dotted line: best epoch, x: stop epoch")
    out.mkdir(parents=True, exist_ok=True)
    savefig(fig, out / "curves.png")
    header = ["run", "best epoch", "stop epoch", "stop reason", "best val MAE", "train MAE @best",
              "gap @best", "final gap"]  # fmt: skip
    md = "\n".join([
        "# Training curves", "", table(header, rows), "",
        "Gap ratio = validation MAE / training MAE (train MAE measured in train mode, as logged per "
        "epoch). The plan's target is a gap below 2.", "", "![curves](curves.png)",
    ])  # fmt: skip
    write_outputs(out, "curves", summary, md)
    print(table(header, rows))
    return summary
