"""``analyze curves RUN_DIR...``: training curves of several runs overlaid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.report import write_outputs
from fusion_tuner.markdown import table
from fusion_tuner.rundir import locate
from fusion_tuner.training.plots import history_columns, plot_curves

HEADER = [
    "run",
    "best epoch",
    "stop epoch",
    "stop reason",
    "best val MAE",
    "train MAE @best",
    "gap @best",
    "final gap",
]


def run_curves(run_dirs: list[str], out: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Overlay train/val MAE and loss, mark best and stop epochs, plot the gap ratio per epoch."""
    runs = [locate(d, names[i] if names else None) for i, d in enumerate(run_dirs)]
    summary: dict[str, Any] = {"runs": {}}
    rows, curves = [], []
    for run in runs:
        col = history_columns(run.history)
        best_i = int(np.argmin(col["val_mae"]))
        best_epoch = int(run.metrics.get("best_epoch", col["epoch"][best_i]))
        curves.append((run.name, run.history, best_epoch))
        info = {
            "best_epoch": best_epoch,
            "stop_epoch": int(col["epoch"][-1]),
            "stop_reason": run.metrics.get("stop_reason"),
            "best_val_mae": float(col["val_mae"][best_i]),
            "train_mae_at_best": float(col["train_mae"][best_i]),
            "gap_ratio_at_best": float(col["gap"][best_i]),
            "final_gap_ratio": float(col["gap"][-1]),
            "gap_trend": float(col["gap"][-1] - col["gap"][best_i]),
        }
        summary["runs"][run.name] = info
        rows.append(
            [
                run.name,
                *(
                    info[k]
                    for k in (
                        "best_epoch",
                        "stop_epoch",
                        "stop_reason",
                        "best_val_mae",
                        "train_mae_at_best",
                        "gap_ratio_at_best",
                        "final_gap_ratio",
                    )
                ),
            ]
        )
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, out / "curves.png")
    md = "\n".join(
        [
            "# Training curves",
            "",
            table(HEADER, rows),
            "",
            "Gap ratio = validation MAE / training MAE (train MAE measured in train mode, as logged per "
            "epoch). The plan's target is a gap below 2.",
            "",
            "![curves](curves.png)",
        ]
    )
    write_outputs(out, "curves", summary, md)
    print(table(HEADER, rows))
    return summary
