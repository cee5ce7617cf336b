"""``analyze curves RUN_DIR...``: training curves of several runs overlaid.

:func:`compute_curves` reads the numbers off the runs' histories (a :class:`Curves`),
:func:`curves_table` and :func:`curves_markdown` render them, and :func:`run_curves` loads the
runs, writes ``curves.png`` and ``curves.{json,md}`` and prints the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.outputs import write_outputs
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
# the summary's keys shown in the table, in HEADER's order (after the run's name)
COLUMNS = (
    "best_epoch",
    "stop_epoch",
    "stop_reason",
    "best_val_mae",
    "train_mae_at_best",
    "gap_ratio_at_best",
    "final_gap_ratio",
)


@dataclass(frozen=True)
class RunCurve:
    """One run's best and stop epochs and its gap ratio at both, and its history (the plot)."""

    name: str
    best_epoch: int
    stop_epoch: int
    stop_reason: str | None
    best_val_mae: float
    train_mae_at_best: float
    gap_ratio_at_best: float
    final_gap_ratio: float
    gap_trend: float  # final gap minus gap at the best epoch
    history: list[dict[str, str]] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The run's entry in ``curves.json``.

        Returns:
            A new dict of every field but the name and the history.
        """
        return {
            "best_epoch": self.best_epoch,
            "stop_epoch": self.stop_epoch,
            "stop_reason": self.stop_reason,
            "best_val_mae": self.best_val_mae,
            "train_mae_at_best": self.train_mae_at_best,
            "gap_ratio_at_best": self.gap_ratio_at_best,
            "final_gap_ratio": self.final_gap_ratio,
            "gap_trend": self.gap_trend,
        }


@dataclass(frozen=True)
class Curves:
    """The runs' curves, in the order given."""

    runs: list[RunCurve]

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``curves.json`` (and returned by :func:`run_curves`).

        Returns:
            A new dict ``{"runs": {name: entry}}``.
        """
        return {"runs": {r.name: r.to_json() for r in self.runs}}


def run_curve(name: str, history: list[dict[str, str]], metrics: Mapping[str, Any]) -> RunCurve:
    """One run's curve numbers (pure: no I/O).

    Args:
        name: the run's name.
        history: its ``history.csv`` rows.
        metrics: its ``metrics.json`` (``best_epoch`` and ``stop_reason`` are read when there).

    Returns:
        A :class:`RunCurve`.
    """
    col = history_columns(history)
    best_i = int(np.argmin(col["val_mae"]))
    return RunCurve(
        name=name,
        best_epoch=int(metrics.get("best_epoch", col["epoch"][best_i])),
        stop_epoch=int(col["epoch"][-1]),
        stop_reason=metrics.get("stop_reason"),
        best_val_mae=float(col["val_mae"][best_i]),
        train_mae_at_best=float(col["train_mae"][best_i]),
        gap_ratio_at_best=float(col["gap"][best_i]),
        final_gap_ratio=float(col["gap"][-1]),
        gap_trend=float(col["gap"][-1] - col["gap"][best_i]),
        history=history,
    )


def compute_curves(runs: Iterable[tuple[str, list[dict[str, str]], Mapping[str, Any]]]) -> Curves:
    """Every run's curve numbers (pure: no I/O).

    Args:
        runs: (name, history rows, metrics) per run; consumed one run at a time, so a
            generator that loads them interleaves loading and computing.

    Returns:
        A :class:`Curves`.
    """
    return Curves([run_curve(name, history, metrics) for name, history, metrics in runs])


def curves_table(res: Curves) -> str:
    """One row per run (HEADER's columns) as a Markdown table.

    Returns:
        The table's text.
    """
    return table(HEADER, [[r.name, *(getattr(r, k) for k in COLUMNS)] for r in res.runs])


def curves_markdown(res: Curves) -> str:
    """The report ``curves.md`` (before :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    return "\n".join(
        [
            "# Training curves",
            "",
            curves_table(res),
            "",
            "Gap ratio = validation MAE / training MAE (train MAE measured in train mode, as logged per "
            "epoch). The plan's target is a gap below 2.",
            "",
            "![curves](curves.png)",
        ]
    )


def run_curves(run_dirs: list[str], out: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Overlay train/val MAE and loss, mark best and stop epochs, plot the gap ratio per epoch.

    Writes ``curves.png`` and ``curves.{json,md}`` into ``out`` and prints the table.

    Returns:
        The numbers written to ``curves.json`` (:meth:`Curves.to_json`).
    """
    runs = [locate(d, names[i] if names else None) for i, d in enumerate(run_dirs)]
    res = compute_curves((run.name, run.history, run.metrics) for run in runs)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves([(r.name, r.history, r.best_epoch) for r in res.runs], out / "curves.png")
    summary = res.to_json()
    write_outputs(out, "curves", summary, curves_markdown(res))
    print(curves_table(res))
    return summary
