"""The sweep summary: one row per run of a multirun, the plan's decision per experiment, and the
phase's verdict. Reads run directories only (through :class:`fusion_tuner.rundir.Run`) plus the
sweep's plan, so runs that failed or never started are listed, never dropped.

Decision rule, per experiment, on validation MAE (mean over its seeds) against the baseline's:
with ``d = mean(exp) - mean(baseline)`` and ``se`` the standard error of that difference (0 with
one seed each), the margin is ``max(threshold * mean(baseline), 2 * se)``;
``d < -margin``: ✅ down (continue fine-tuning around it); ``d > margin``: ❌ up (back off to
more conservative settings); otherwise ⚠️ unchanged (try the phase 4 settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from fusion_tuner.config import flatten, is_result_neutral
from fusion_tuner.rundir import COMPLETED, Run, RunDir
from fusion_tuner.sweeps.plan import job_experiment, read_plan

DOWN, SAME, UP, NONE = "✅ down", "⚠️ unchanged", "❌ up", "n/a"
NEXT_STEP = {
    DOWN: "continue fine-tuning around it",
    SAME: "try the phase 4 settings",
    UP: "back off to more conservative settings",
}
# Shown in their own columns, so not repeated among what distinguishes a run.
OWN_COLUMNS = ("experiment_name", "random_seed")
COLUMNS = (
    "experiment",
    "seed",
    "status",
    "overrides",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "train_mae",
    "val_mae",
    "test_mae",
    "val_r2",
    "test_r2",
    "gap_ratio",
    "delta_val_mae",
    "delta_val_mae_pct",
    "decision",
    "flags",
    "error",
    "run_dir",
)


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every run directory of the sweep, and every planned job that has none (``missing``)."""
    runs = [
        Run(d)
        for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if RunDir(d).is_run()
    ]
    found = [sorted(r.overrides) for r in runs]
    for job in read_plan(sweep_dir) or []:
        if sorted(job) not in found:
            runs.append(Run.missing(job_experiment(job), job))
    return runs


def _experiment_order(runs: list[Run]) -> list[str]:
    order: list[str] = []
    for r in runs:
        if r.experiment not in order:
            order.append(r.experiment)
    if "baseline" in order:
        order.remove("baseline")
        order.insert(0, "baseline")
    return order


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, math.sqrt(var)


def decide(exp: list[float], base: list[float], threshold: float) -> tuple[str, float, float]:
    """Return (decision, delta, margin) by the rule in the module docstring."""
    if not exp or not base:
        return NONE, math.nan, math.nan
    (me, se), (mb, sb) = mean_std(exp), mean_std(base)
    stderr = (
        math.sqrt(se**2 / len(exp) + sb**2 / len(base)) if len(exp) > 1 and len(base) > 1 else 0.0
    )
    margin = max(threshold * mb, 2 * stderr)
    d = me - mb
    return (DOWN if d < -margin else UP if d > margin else SAME), d, margin


def _distinguishing(run: Run, reference: dict[str, Any]) -> str:
    """``key=value`` of every result-affecting setting in which ``run`` differs from
    ``reference`` (the baseline's flattened config)."""
    diffs = [
        f"{k}={v}"
        for k, v in sorted(flatten(run.settings).items())
        if k not in OWN_COLUMNS and not is_result_neutral(k) and reference.get(k, v) != v
    ]
    return "; ".join(diffs)


class Decision(NamedTuple):
    """The decision for one experiment against the baseline."""

    decision: str
    delta: float
    margin: float
    n: int


@dataclass
class Summary:
    rows: list[dict[str, Any]]
    decisions: dict[str, Decision]
    verdict: str
    threshold: float
    # SLURM's view of unfinished runs (fusion_tuner.slurm.record), "" when there is none
    slurm_note: str = ""


def _reference(runs: list[Run], base_runs: list[Run]) -> dict[str, Any]:
    """The flattened config runs are compared with: the baseline's, else what all runs share."""
    reference = flatten(next((r.settings for r in base_runs if r.settings), {}))
    if not reference:
        flat = [flatten(r.settings) for r in runs if r.settings]
        reference = (
            {k: v for k, v in flat[0].items() if all(f.get(k) == v for f in flat)} if flat else {}
        )
    return reference


def _row(run: Run, reference: dict[str, Any], ref_val: float | None, decision: str) -> dict:
    m = run.metrics
    delta = run.val_mae - ref_val if run.val_mae is not None and ref_val is not None else None
    flags = []
    if run.status == COMPLETED and m.get("gap_ratio", 0) > 2:
        flags.append("overfitting (gap > 2x)")
    if m.get("early_stopping_can_fire") is False:
        flags.append("early stopping could not fire")
    if m.get("modality") == "graph":  # text=none
        inert = m.get("inert_text_keys") or []
        flags.append(
            f"graph-only: text knobs had no effect ({', '.join(inert)})" if inert else "graph-only"
        )
    error = (m.get("error") or "").strip()
    return {
        "experiment": run.experiment,
        "seed": run.seed,
        "status": run.status,
        "overrides": _distinguishing(run, reference) if run.settings else " ".join(run.overrides),
        "best_epoch": m.get("best_epoch"),
        "epochs_run": m.get("epochs_run"),
        "stop_reason": m.get("stop_reason"),
        "train_mae": run.result("train"),
        "val_mae": run.val_mae,
        "test_mae": run.result("test"),
        "val_r2": run.result("val", "r2"),
        "test_r2": run.result("test", "r2"),
        "gap_ratio": m.get("gap_ratio"),
        "delta_val_mae": delta,
        "delta_val_mae_pct": 100 * delta / ref_val if delta is not None and ref_val else None,
        "decision": decision,
        "flags": "; ".join(flags),
        "error": error.splitlines()[-1] if error else "",
        "run_dir": run.name,
    }


def summarize(sweep_dir: Path, threshold: float = 0.02) -> Summary:
    """Build the summary of ``sweep_dir`` (see the module docstring)."""
    from fusion_tuner.slurm.record import annotate_runs

    runs = load_runs(sweep_dir)
    slurm_note = annotate_runs(sweep_dir, runs)  # live SLURM state of unfinished runs, if any
    base_runs = [r for r in runs if r.experiment == "baseline"]
    base_vals = [r.val_mae for r in base_runs if r.val_mae is not None]
    order = _experiment_order(runs)
    decisions: dict[str, Decision] = {}
    for exp in order:
        vals = [r.val_mae for r in runs if r.experiment == exp and r.val_mae is not None]
        if exp == "baseline":
            decisions[exp] = Decision("(reference)", 0.0, 0.0, len(vals))
        else:
            decisions[exp] = Decision(*decide(vals, base_vals, threshold), len(vals))
    reference = _reference(runs, base_runs)
    base_by_seed = {r.seed: r.val_mae for r in base_runs if r.val_mae is not None}
    base_mean = mean_std(base_vals)[0] if base_vals else None
    ordered = sorted(
        runs, key=lambda r: (order.index(r.experiment), r.seed if r.seed is not None else -1)
    )
    rows = [
        _row(r, reference, base_by_seed.get(r.seed, base_mean), decisions[r.experiment].decision)
        for r in ordered
    ]
    verdict = _verdict(sweep_dir, rows, decisions, base_vals)
    return Summary(rows, decisions, verdict, threshold, slurm_note)


def _verdict(
    sweep_dir: Path, rows: list[dict], decisions: dict[str, Decision], base_vals: list[float]
) -> str:
    bad = [r for r in rows if r["status"] != COMPLETED]
    caveat = ""
    if bad:
        which = ", ".join(sorted({r["experiment"] for r in bad}))
        caveat = (
            f" {len(bad)} run(s) failed or did not finish ({which}): rerun the sweep into "
            f"{sweep_dir} (hydra.sweep.dir=...) to complete them."
        )
    if not base_vals:
        return "No completed baseline run: no decision is possible." + caveat
    tried = {e: d for e, d in decisions.items() if e != "baseline" and d.decision != NONE}
    if not tried:
        return "No completed experiment besides the baseline: nothing to decide yet." + caveat
    down = {e: d for e, d in tried.items() if d.decision == DOWN}
    if down:
        best = min(down, key=lambda e: down[e].delta)
        pct = 100 * down[best].delta / mean_std(base_vals)[0]
        return (
            f"Tuning works: {best} lowered validation MAE by {-pct:.1f}% against the baseline; "
            f"next, continue fine-tuning around {best}." + caveat
        )
    if any(d.decision == SAME for d in tried.values()):
        return (
            "Validation MAE is unchanged by these settings: bigger changes are needed; next, try "
            "the phase 4 settings (python -m fusion_tuner +phase=4 -m)." + caveat
        )
    return (
        "Every setting raised validation MAE (over-adjusted); next, back off to more "
        "conservative settings." + caveat
    )
