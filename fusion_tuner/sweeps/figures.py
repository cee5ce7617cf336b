"""The plan report's figures of whole arms (every seed of an experiment), computed first as
numbers (kept in ``report.json``) and then drawn.

* **Learning curves** (:func:`arm_curve`, :func:`plot_arm_curves`): per epoch, the median over
  the arm's seeds of validation MAE and of eval-mode training MAE (the one every gap ratio uses),
  with the range over seeds as a band. A seed that stopped early counts only in the epochs it
  ran, so the number of seeds behind each epoch is kept beside the values. Each experiment gets
  a panel with its sweep's baseline on the same axes, so "still improving at its last epoch" or
  "one seed stalled" can be seen.
* **Parity** (:func:`arm_parity`, :func:`plot_parity`): predicted against true on the test split,
  every seed's predictions, with the mean over seeds of the test MAE and R² (each seed's own
  ``predictions_test.csv``) beside the training-mean predictor's test MAE.

Both carry the training-mean predictor's MAE (``metrics.json``) as the reference for "learned".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.rundir import Run
from fusion_tuner.training.plots import history_columns

BASELINE_COLOR = "0.35"


@dataclass(frozen=True)
class ArmCurve:
    """An arm's learning curves over seeds: per epoch, the median over the seeds that ran it and
    the range over them (``low``, ``high``)."""

    label: str
    runs: list[str]  # the run directories' names behind the curves
    epoch: list[int]
    seeds_at_epoch: list[int]
    val_median: list[float]
    val_low: list[float]
    val_high: list[float]
    train_median: list[float]  # eval-mode training MAE (the gap ratio's)
    best_epochs: list[int]  # each run's best epoch (metrics.json), in ``runs`` order
    last_epochs: list[int]  # each run's last epoch in history.csv
    # the training-mean predictor's validation MAE (median over the runs; None if unrecorded)
    val_mean_predictor: float | None = None


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _median_reference(runs: Sequence[Run], split: str) -> float | None:
    """The median over ``runs`` of the training-mean predictor's MAE on ``split``."""
    found = [r.metrics.get(split, {}).get("mean_predictor_mae") for r in runs]
    values = [float(v) for v in found if v is not None]
    return float(np.median(values)) if values else None


def arm_curve(label: str, runs: Sequence[Run]) -> ArmCurve | None:
    """The curves of the runs of ``runs`` that have a ``history.csv`` (None when none has)."""
    columns, names, best, used = [], [], [], []
    for run in runs:
        if run.files is None or not run.files.history.is_file():
            continue
        history = run.history
        if not history:
            continue
        columns.append(history_columns(history))
        names.append(run.name)
        best.append(int(run.metrics.get("best_epoch", -1)))
        used.append(run)
    if not columns:
        return None
    epochs = sorted({int(e) for col in columns for e in col["epoch"]})
    val, train = [], []
    for key, into in (("val_mae", val), ("train_mae", train)):
        for e in epochs:
            into.append(
                [float(c[key][i]) for c in columns for i in np.flatnonzero(c["epoch"] == e)]
            )
    return ArmCurve(
        label=label,
        runs=names,
        epoch=epochs,
        seeds_at_epoch=[len(v) for v in val],
        val_median=[float(np.median(v)) for v in val],
        val_low=[min(v) for v in val],
        val_high=[max(v) for v in val],
        train_median=[float(np.median(v)) for v in train],
        best_epochs=best,
        last_epochs=[int(c["epoch"][-1]) for c in columns],
        val_mean_predictor=_median_reference(used, "val"),
    )


def _draw(ax: object, curve: ArmCurve, color: str, band: bool = True) -> None:
    ep = np.array(curve.epoch)
    if band and max(curve.seeds_at_epoch) > 1:
        ax.fill_between(ep, curve.val_low, curve.val_high, color=color, alpha=0.18, lw=0)
    seeds = max(curve.seeds_at_epoch)
    ax.plot(ep, curve.val_median, color=color, lw=1.8, label=f"{curve.label} val ({_seeds(seeds)})")
    ax.plot(ep, curve.train_median, color=color, lw=1, ls="--", label=f"{curve.label} train")
    # each seed's best epoch on its median validation curve
    best = [e for e in curve.best_epochs if e in curve.epoch]
    ax.plot(
        best,
        [curve.val_median[curve.epoch.index(e)] for e in best],
        "v",
        color=color,
        ms=5,
        ls="none",
    )


def plot_arm_curves(
    baseline: ArmCurve | None, arms: Sequence[ArmCurve], path: Path, unit: str = ""
) -> None:
    """One panel per arm of ``arms``, ``baseline`` in grey on each (one panel for the baseline
    alone when ``arms`` is empty)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = list(arms) or ([baseline] if baseline else [])
    if not panels:
        raise ValueError("no curves to draw")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, panels, strict=False):
        if baseline is not None and curve is not baseline:
            _draw(ax, baseline, BASELINE_COLOR)
        _draw(ax, curve, "tab:blue" if curve is not baseline else BASELINE_COLOR)
        reference = curve.val_mean_predictor
        if reference is None and baseline is not None:
            reference = baseline.val_mean_predictor
        if reference is not None:
            ax.axhline(reference, color="black", ls=":", lw=1, label="mean predictor, val")
        ax.set_title(curve.label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"MAE{f' ({unit})' if unit else ''}")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        "median over seeds (band: range over seeds); solid: validation, dashed: training "
        "(eval mode); ▼: a seed's best epoch",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)


@dataclass(frozen=True)
class ArmParity:
    """An arm's test-set predictions: every seed's points, and mean test MAE and R² over seeds."""

    label: str
    runs: list[str]
    crystals: int  # test crystals of the first run (every seed of an arm shares the split)
    mae: float  # mean over seeds
    r2: float  # mean over seeds
    mean_predictor_mae: float | None  # the training-mean predictor's test MAE (median, seeds)
    target: list[list[float]]  # per run
    prediction: list[list[float]]


def _r2(target: np.ndarray, prediction: np.ndarray) -> float:
    ss = float(((target - target.mean()) ** 2).sum())
    return 1.0 - float(((target - prediction) ** 2).sum()) / ss if ss > 0 else float("nan")


def arm_parity(label: str, runs: Sequence[Run]) -> ArmParity | None:
    """The test predictions of the runs of ``runs`` that wrote ``predictions_test.csv``."""
    names, target, prediction = [], [], []
    for run in runs:
        found = run.predictions("test")
        if found is None or not len(found.ids):
            continue
        names.append(run.name)
        target.append(found.target)
        prediction.append(found.prediction)
    if not names:
        return None
    return ArmParity(
        label=label,
        runs=names,
        crystals=len(target[0]),
        mae=float(np.mean([np.abs(t - p).mean() for t, p in zip(target, prediction, strict=True)])),
        r2=float(np.mean([_r2(t, p) for t, p in zip(target, prediction, strict=True)])),
        mean_predictor_mae=_median_reference([r for r in runs if r.name in names], "test"),
        target=[t.tolist() for t in target],
        prediction=[p.tolist() for p in prediction],
    )


def plot_parity(arms: Sequence[ArmParity], path: Path, unit: str = "") -> None:
    """Predicted against true on the test split, one panel per arm, the same axes for all."""
    plt = pyplot()
    values = [v for a in arms for part in (a.target, a.prediction) for run in part for v in run]
    lo, hi = min(values), max(values)
    pad = 0.04 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    fig, axes = plt.subplots(1, len(arms), figsize=(4.6 * len(arms), 4.4), squeeze=False)
    for ax, arm in zip(axes.flat, arms, strict=True):
        for k, (t, p) in enumerate(zip(arm.target, arm.prediction, strict=True)):
            ax.plot(t, p, "o", ms=3, alpha=0.5, color=f"C{k % 10}", label=arm.runs[k])
        ax.plot([lo, hi], [lo, hi], color="black", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        suffix = f" ({unit})" if unit else ""
        ax.set_xlabel(f"true{suffix}")
        ax.set_ylabel(f"predicted{suffix}")
        reference = (
            f" (mean predictor {arm.mean_predictor_mae:.4g})"
            if arm.mean_predictor_mae is not None
            else ""
        )
        ax.set_title(
            f"{arm.label}\ntest MAE {arm.mae:.4g}{reference}, R² {arm.r2:.2f}\n"
            f"(mean of {_seeds(len(arm.runs))}, {arm.crystals} crystals)",
            fontsize=9,
        )
        if len(arm.runs) <= 6:
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)
