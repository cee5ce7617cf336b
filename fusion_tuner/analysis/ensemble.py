"""``analyze ensemble RUN_DIR... | --glob PATTERN``: average the test predictions of several runs."""

from __future__ import annotations

import csv
import glob as globlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.report import write_outputs
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import atomic_write_text, pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.metrics import regression_metrics
from fusion_tuner.rundir import Run, locate


def _identity(run: Run) -> tuple[Any, ...]:
    d = run.settings["dataset"]
    return (d["source"], d.get("name"), d.get("root"), d["target"])


def gather_members(run_dirs: list[str], pattern: str | None) -> list[Run]:
    paths = list(run_dirs)
    if pattern:
        paths += sorted(p for p in globlib.glob(pattern) if Path(p).is_dir())
    if len(paths) < 2:
        raise AnalysisError(
            f"an ensemble needs at least 2 runs, got {len(paths)} ({pattern or run_dirs})"
        )
    return [locate(p) for p in paths]


def run_ensemble(run_dirs: list[str], out: Path, pattern: str | None = None) -> dict[str, Any]:
    """Members must share dataset, target and test ids; writes ensemble_predictions.csv and metrics."""
    members = gather_members(run_dirs, pattern)
    ident = {m.name: _identity(m) for m in members}
    if len(set(ident.values())) > 1:
        raise AnalysisError(f"members use different datasets or targets: {ident}")
    preds = []
    for m in members:
        p = m.predictions("test")
        if p is None:
            raise AnalysisError(f"{m.path} has no predictions_test.csv: is the run completed?")
        preds.append((p.ids, p.target, p.prediction))
    ids0 = preds[0][0]
    for m, (ids, _, _) in zip(members, preds, strict=True):
        if set(ids) != set(ids0):
            raise AnalysisError(
                f"{m.name} has different test ids than {members[0].name} "
                f"({len(set(ids) ^ set(ids0))} differ): members must share one test split"
            )
    order = [{cid: i for i, cid in enumerate(ids)} for ids, _, _ in preds]
    y = preds[0][1][[order[0][i] for i in ids0]]
    p = np.stack(
        [pr[2][[o[i] for i in ids0]] for pr, o in zip(preds, order, strict=True)]
    )  # (k, n)
    mean, std = p.mean(0), p.std(0)
    err = np.abs(mean - y)
    from scipy.stats import spearmanr

    rho = (
        float(spearmanr(std, err).statistic)
        if np.ptp(std) > 0 and np.ptp(err) > 0
        else float("nan")
    )
    member_metrics = {m.name: regression_metrics(y, p[k]) for k, m in enumerate(members)}
    res = {
        "members": [str(m.path) for m in members],
        "n_test": len(ids0),
        "ensemble": regression_metrics(y, mean),
        "members_metrics": member_metrics,
        "members_mean": {
            k: float(np.mean([mm[k] for mm in member_metrics.values()]))
            for k in ("mae", "rmse", "r2")
        },
        "uncertainty_error_spearman": rho,
    }
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "target", "mean", "std", *[f"member_{k + 1}" for k in range(len(members))]])
    for i, cid in enumerate(ids0):
        w.writerow(
            [
                cid,
                f"{y[i]:.6g}",
                f"{mean[i]:.6g}",
                f"{std[i]:.6g}",
                *[f"{p[k, i]:.6g}" for k in range(len(members))],
            ]
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(buf.getvalue(), out / "ensemble_predictions.csv")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(std, err, s=10, alpha=0.6)
    ax.set_xlabel("ensemble std (predicted uncertainty)")
    ax.set_ylabel("|ensemble mean − target|")
    ax.set_title(f"Spearman ρ = {rho:.3f} (n = {len(ids0)})")
    save_figure(fig, out / "uncertainty.png")
    rows = [
        ["ensemble (mean)", *[res["ensemble"][k] for k in ("mae", "rmse", "r2")]],
        ["members' average", *[res["members_mean"][k] for k in ("mae", "rmse", "r2")]],
    ]
    rows += [
        [f"member {k + 1}: {m.name}", *[member_metrics[m.name][x] for x in ("mae", "rmse", "r2")]]
        for k, m in enumerate(members)
    ]
    header = ["test", "MAE", "RMSE", "R²"]
    md = "\n".join(
        [
            f"# Ensemble of {len(members)} runs (test split, n = {len(ids0)})",
            "",
            table(header, rows),
            "",
            f"Uncertainty–error rank correlation (Spearman, std vs |error|): {rho:.3f}.",
            "",
            "![uncertainty](uncertainty.png)",
        ]
    )
    write_outputs(out, "ensemble", res, md)
    print(table(header, rows))
    return res
