"""``analyze ensemble RUN_DIR... | --glob PATTERN``: average the test predictions of several runs.

:func:`load_members` reads every member's recorded test predictions, :func:`compute_ensemble`
computes every number (an :class:`Ensemble`), :func:`ensemble_csv`, :func:`ensemble_markdown`,
:func:`ensemble_table` and :func:`plot_uncertainty` render it, and :func:`run_ensemble` does all
of it, writes ``ensemble_predictions.csv``, ``uncertainty.png`` and ``ensemble.{json,md}`` and
prints the table.
"""

from __future__ import annotations

import csv
import glob as globlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import atomic_write_text, pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.metrics import regression_metrics
from fusion_tuner.rundir import Run, locate


def _identity(run: Run) -> tuple[Any, ...]:
    d = run.settings["dataset"]
    return (d["source"], d.get("name"), d.get("root"), d["target"])


def gather_members(run_dirs: list[str], pattern: str | None) -> list[Run]:
    """The runs named, then those matching ``pattern`` (sorted); at least two.

    Returns:
        The located runs.
    """
    paths = list(run_dirs)
    if pattern:
        paths += sorted(p for p in globlib.glob(pattern) if Path(p).is_dir())
    if len(paths) < 2:
        raise AnalysisError(
            f"an ensemble needs at least 2 runs, got {len(paths)} ({pattern or run_dirs})"
        )
    return [locate(p) for p in paths]


@dataclass(frozen=True)
class MemberPredictions:
    """One member's recorded test predictions (``predictions_test.csv``), in its own order."""

    name: str
    path: str
    ids: list[str]
    target: np.ndarray
    prediction: np.ndarray


@dataclass(frozen=True)
class Ensemble:
    """Every number of an ensemble of runs on their shared test split."""

    members: list[str]  # the run directories
    names: list[str]  # the runs' names, in member order
    ids: list[str]  # the test ids, in the first member's order
    target: np.ndarray = field(repr=False, compare=False)
    predictions: np.ndarray = field(repr=False, compare=False)  # (members, crystals)
    mean: np.ndarray = field(repr=False, compare=False)  # the ensemble's prediction
    std: np.ndarray = field(repr=False, compare=False)  # its spread (the predicted uncertainty)
    abs_error: np.ndarray = field(repr=False, compare=False)  # |mean - target|
    ensemble: dict[str, float]  # regression metrics of the mean
    members_metrics: dict[str, dict[str, float]]  # by name
    members_mean: dict[str, float]  # MAE, RMSE, R² averaged over the members
    uncertainty_error_spearman: float  # std vs |error| (NaN when either is constant)

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``ensemble.json`` (and returned by :func:`run_ensemble`).

        Returns:
            A new dict: members, n_test, ensemble, members_metrics, members_mean and
            uncertainty_error_spearman.
        """
        return {
            "members": self.members,
            "n_test": len(self.ids),
            "ensemble": self.ensemble,
            "members_metrics": self.members_metrics,
            "members_mean": self.members_mean,
            "uncertainty_error_spearman": self.uncertainty_error_spearman,
        }


def refuse_mixed(members: Sequence[Run]) -> None:
    """Raise :class:`AnalysisError` unless every member has the same dataset and target.

    Returns:
        None; it only checks.
    """
    ident = {m.name: _identity(m) for m in members}
    if len(set(ident.values())) > 1:
        raise AnalysisError(f"members use different datasets or targets: {ident}")


def load_members(members: Sequence[Run]) -> list[MemberPredictions]:
    """Every member's recorded test predictions (refused where a member has none).

    Returns:
        One :class:`MemberPredictions` per member, in order.
    """
    preds = []
    for m in members:
        p = m.predictions("test")
        if p is None:
            raise AnalysisError(f"{m.path} has no predictions_test.csv: is the run completed?")
        preds.append(MemberPredictions(m.name, str(m.path), p.ids, p.target, p.prediction))
    return preds


def _aligned(preds: Sequence[MemberPredictions]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(the first member's test ids, the targets, the (members, crystals) predictions) in that
    order; refused when a member has other test ids."""
    ids0 = preds[0].ids
    for m in preds:
        if set(m.ids) != set(ids0):
            raise AnalysisError(
                f"{m.name} has different test ids than {preds[0].name} "
                f"({len(set(m.ids) ^ set(ids0))} differ): members must share one test split"
            )
    order = [{cid: i for i, cid in enumerate(m.ids)} for m in preds]
    y = preds[0].target[[order[0][i] for i in ids0]]
    p = np.stack([m.prediction[[o[i] for i in ids0]] for m, o in zip(preds, order, strict=True)])
    return ids0, y, p


def compute_ensemble(preds: Sequence[MemberPredictions]) -> Ensemble:
    """The mean of the members' test predictions, its metrics and its uncertainty (pure: no
    I/O).

    Returns:
        An :class:`Ensemble`.
    """
    from scipy.stats import spearmanr

    ids, y, p = _aligned(preds)
    mean, std = p.mean(0), p.std(0)
    err = np.abs(mean - y)
    rho = (
        float(spearmanr(std, err).statistic)
        if np.ptp(std) > 0 and np.ptp(err) > 0
        else float("nan")
    )
    member_metrics = {m.name: regression_metrics(y, p[k]) for k, m in enumerate(preds)}
    return Ensemble(
        members=[m.path for m in preds],
        names=[m.name for m in preds],
        ids=ids,
        target=y,
        predictions=p,
        mean=mean,
        std=std,
        abs_error=err,
        ensemble=regression_metrics(y, mean),
        members_metrics=member_metrics,
        members_mean={
            k: float(np.mean([mm[k] for mm in member_metrics.values()]))
            for k in ("mae", "rmse", "r2")
        },
        uncertainty_error_spearman=rho,
    )


def ensemble_csv(res: Ensemble) -> str:
    """``ensemble_predictions.csv``: id, target, mean, std and every member's prediction.

    Returns:
        The CSV text.
    """
    k = len(res.names)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "target", "mean", "std", *[f"member_{j + 1}" for j in range(k)]])
    for i, cid in enumerate(res.ids):
        w.writerow(
            [
                cid,
                f"{res.target[i]:.6g}",
                f"{res.mean[i]:.6g}",
                f"{res.std[i]:.6g}",
                *[f"{res.predictions[j, i]:.6g}" for j in range(k)],
            ]
        )
    return buf.getvalue()


def ensemble_table(res: Ensemble) -> str:
    """The ensemble's, the members' average and each member's test metrics as a table.

    Returns:
        The Markdown table's text.
    """
    keys = ("mae", "rmse", "r2")
    rows = [
        ["ensemble (mean)", *[res.ensemble[k] for k in keys]],
        ["members' average", *[res.members_mean[k] for k in keys]],
    ]
    rows += [
        [f"member {k + 1}: {name}", *[res.members_metrics[name][x] for x in keys]]
        for k, name in enumerate(res.names)
    ]
    return table(["test", "MAE", "RMSE", "R²"], rows)


def ensemble_markdown(res: Ensemble) -> str:
    """The report ``ensemble.md`` (before :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    return "\n".join(
        [
            f"# Ensemble of {len(res.names)} runs (test split, n = {len(res.ids)})",
            "",
            ensemble_table(res),
            "",
            "Uncertainty–error rank correlation (Spearman, std vs |error|): "
            f"{res.uncertainty_error_spearman:.3f}.",
            "",
            "![uncertainty](uncertainty.png)",
        ]
    )


def plot_uncertainty(res: Ensemble, path: Path) -> None:
    """Draw the ensemble's std against its absolute error into ``path``.

    Returns:
        None; it writes the figure.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(res.std, res.abs_error, s=10, alpha=0.6)
    ax.set_xlabel("ensemble std (predicted uncertainty)")
    ax.set_ylabel("|ensemble mean − target|")
    ax.set_title(f"Spearman ρ = {res.uncertainty_error_spearman:.3f} (n = {len(res.ids)})")
    save_figure(fig, path)


def run_ensemble(run_dirs: list[str], out: Path, pattern: str | None = None) -> dict[str, Any]:
    """Members must share dataset, target and test ids; writes ensemble_predictions.csv and metrics.

    Writes ``ensemble_predictions.csv``, ``uncertainty.png`` and ``ensemble.{json,md}`` into
    ``out`` and prints the table.

    Returns:
        The numbers written to ``ensemble.json`` (:meth:`Ensemble.to_json`).
    """
    members = gather_members(run_dirs, pattern)
    refuse_mixed(members)
    res = compute_ensemble(load_members(members))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ensemble_csv(res), out / "ensemble_predictions.csv")
    plot_uncertainty(res, out / "uncertainty.png")
    numbers = res.to_json()
    write_outputs(out, "ensemble", numbers, ensemble_markdown(res))
    print(ensemble_table(res))
    return numbers
