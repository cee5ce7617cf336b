"""Sweep summary: one row per run of a multirun, the plan's decision, and the phase's verdict.

Written at the end of every multirun (:class:`SweepSummaryCallback`) and on demand with
``python -m fusion_tuner.summary SWEEP_DIR``. Reads run directories only (``metrics.json``,
``.hydra/config.yaml``, ``.hydra/overrides.yaml``) plus ``sweep_plan.json`` (the job list written
when the sweep starts), so runs that failed or never started are listed, never dropped.

Decision rule, per experiment, on validation MAE (mean over its seeds) against the baseline's:
with ``d = mean(exp) - mean(baseline)`` and ``se`` the standard error of that difference (0 with
one seed each), the margin is ``max(threshold * mean(baseline), 2 * se)``;
``d < -margin``: ✅ down (continue fine-tuning around it); ``d > margin``: ❌ up (back off to
more conservative settings); otherwise ⚠️ unchanged (try the phase 4 settings).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback

from fusion_tuner.analysis.report import fmt
from fusion_tuner.data.cache import atomic_write_text

log = logging.getLogger(__name__)

PLAN_FILE = "sweep_plan.json"
DOWN, SAME, UP, NONE = "✅ down", "⚠️ unchanged", "❌ up", "n/a"
NEXT_STEP = {
    DOWN: "continue fine-tuning around it",
    SAME: "try the phase 4 settings",
    UP: "back off to more conservative settings",
}
IGNORED_KEYS = ("experiment_name", "random_seed", "logger.", "trainer.progress", "dataset.cache_dir",
                "dataset.num_workers")  # fmt: skip
COLUMNS = (
    "experiment", "seed", "status", "overrides", "best_epoch", "epochs_run", "stop_reason",
    "train_mae", "val_mae", "test_mae", "val_r2", "test_r2", "gap_ratio", "delta_val_mae",
    "delta_val_mae_pct", "decision", "flags", "error", "run_dir",
)  # fmt: skip


@dataclass
class Run:
    """One planned or found run of a sweep."""

    name: str
    experiment: str
    seed: int | None
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    @property
    def val_mae(self) -> float | None:
        v = self.metrics.get("val", {}).get("mae") if self.status == "completed" else None
        return float(v) if v is not None else None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every run directory of the sweep, and every planned job that has none (``missing``)."""
    runs: list[Run] = []
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not ((d / ".hydra").is_dir() or (d / "metrics.json").is_file()):
            continue
        metrics = (
            json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
        )
        config = _read_yaml(d / ".hydra" / "config.yaml") or {}
        overrides = _read_yaml(d / ".hydra" / "overrides.yaml") or []
        status = metrics.get("status", "not started")
        runs.append(Run(
            name=d.name, experiment=config.get("experiment_name", metrics.get("experiment", d.name)),
            seed=config.get("random_seed", metrics.get("seed")), status=status, metrics=metrics,
            config=config, overrides=list(overrides), run_dir=d,
        ))  # fmt: skip
    plan_path = sweep_dir / PLAN_FILE
    if plan_path.is_file():
        found = [sorted(r.overrides) for r in runs]
        for job in json.loads(plan_path.read_text())["jobs"]:
            if sorted(job) not in found:
                exp = next(
                    (
                        o.split("=", 1)[1]
                        for o in job
                        if o.split("=")[0].lstrip("+") == "experiment"
                    ),
                    "baseline",  # no experiment override: the default config is the baseline
                )
                runs.append(
                    Run(
                        name="(missing)", experiment=exp, seed=None, status="missing", overrides=job
                    )
                )
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


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, math.sqrt(var)


def decide(exp: list[float], base: list[float], threshold: float) -> tuple[str, float, float]:
    """Return (decision, delta, margin) by the rule in the module docstring."""
    if not exp or not base:
        return NONE, math.nan, math.nan
    (me, se), (mb, sb) = _mean_std(exp), _mean_std(base)
    stderr = (
        math.sqrt(se**2 / len(exp) + sb**2 / len(base)) if len(exp) > 1 and len(base) > 1 else 0.0
    )
    margin = max(threshold * mb, 2 * stderr)
    d = me - mb
    return (DOWN if d < -margin else UP if d > margin else SAME), d, margin


def _distinguishing(run: Run, reference: dict[str, Any]) -> str:
    mine = _flatten(run.config)
    diffs = [
        f"{k}={v}" for k, v in sorted(mine.items())
        if not any(k == i or k.startswith(i) for i in IGNORED_KEYS) and reference.get(k, v) != v
    ]  # fmt: skip
    return "; ".join(diffs)


def _fmt(v: Any, digits: int = 4) -> str:
    return fmt(v, digits, missing="")


@dataclass
class Summary:
    rows: list[dict[str, Any]]
    decisions: dict[
        str, tuple[str, float, float, int]
    ]  # experiment -> (decision, delta, margin, n)
    verdict: str
    threshold: float
    slurm_note: str = ""  # SLURM's view of unfinished runs (fusion_tuner.slurm.record)


def summarize(sweep_dir: Path, threshold: float = 0.02) -> Summary:
    """Build the summary of ``sweep_dir`` (see the module docstring)."""
    from fusion_tuner.slurm.record import annotate_runs

    runs = load_runs(sweep_dir)
    slurm_note = annotate_runs(sweep_dir, runs)  # live SLURM state of unfinished runs, if any
    base_runs = [r for r in runs if r.experiment == "baseline"]
    base_vals = [r.val_mae for r in base_runs if r.val_mae is not None]
    reference = _flatten(next((r.config for r in base_runs if r.config), {}))
    if not reference and runs:  # no baseline: show what differs from the values all runs share
        flat = [_flatten(r.config) for r in runs if r.config]
        reference = (
            {k: v for k, v in flat[0].items() if all(f.get(k) == v for f in flat)} if flat else {}
        )
    order = _experiment_order(runs)
    decisions: dict[str, tuple[str, float, float, int]] = {}
    for exp in order:
        vals = [r.val_mae for r in runs if r.experiment == exp and r.val_mae is not None]
        decision, delta, margin = (
            decide(vals, base_vals, threshold) if exp != "baseline" else (NONE, 0.0, 0.0)
        )
        decisions[exp] = (
            decision if exp != "baseline" else "(reference)",
            delta,
            margin,
            len(vals),
        )
    base_by_seed = {r.seed: r.val_mae for r in base_runs if r.val_mae is not None}
    base_mean = _mean_std(base_vals)[0] if base_vals else None
    rows = []
    for r in sorted(
        runs, key=lambda r: (order.index(r.experiment), r.seed if r.seed is not None else -1)
    ):
        m = r.metrics
        ref = base_by_seed.get(r.seed, base_mean)
        delta = r.val_mae - ref if r.val_mae is not None and ref is not None else None
        flags = []
        if r.status == "completed" and m.get("gap_ratio", 0) > 2:
            flags.append("overfitting (gap > 2x)")
        if m.get("early_stopping_can_fire") is False:
            flags.append("early stopping could not fire")
        rows.append({
            "experiment": r.experiment, "seed": r.seed, "status": r.status,
            "overrides": _distinguishing(r, reference) if r.config else " ".join(r.overrides),
            "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run"),
            "stop_reason": m.get("stop_reason"),
            "train_mae": m.get("train", {}).get("mae"), "val_mae": r.val_mae,
            "test_mae": m.get("test", {}).get("mae"), "val_r2": m.get("val", {}).get("r2"),
            "test_r2": m.get("test", {}).get("r2"), "gap_ratio": m.get("gap_ratio"),
            "delta_val_mae": delta,
            "delta_val_mae_pct": 100 * delta / ref if delta is not None and ref else None,
            "decision": decisions[r.experiment][0], "flags": "; ".join(flags),
            "error": (m.get("error") or "").strip().splitlines()[-1] if m.get("error") else "",
            "run_dir": r.name,
        })  # fmt: skip
    verdict = _verdict(sweep_dir, rows, decisions, base_vals)
    return Summary(rows, decisions, verdict, threshold, slurm_note)


def _verdict(sweep_dir: Path, rows: list[dict], decisions: dict, base_vals: list[float]) -> str:
    bad = [r for r in rows if r["status"] != "completed"]
    caveat = (
        f" {len(bad)} run(s) failed or did not finish ({', '.join(sorted({r['experiment'] for r in bad}))}): "
        f"rerun the sweep into {sweep_dir} (hydra.sweep.dir=...) to complete them."
        if bad else ""
    )  # fmt: skip
    if not base_vals:
        return "No completed baseline run: no decision is possible." + caveat
    tried = {e: d for e, d in decisions.items() if e != "baseline" and d[0] != NONE}
    if not tried:
        return "No completed experiment besides the baseline: nothing to decide yet." + caveat
    down = {e: d for e, d in tried.items() if d[0] == DOWN}
    base = _mean_std(base_vals)[0]
    if down:
        best = min(down, key=lambda e: down[e][1])
        pct = 100 * down[best][1] / base
        return (f"Tuning works: {best} lowered validation MAE by {-pct:.1f}% against the baseline; "
                f"next, continue fine-tuning around {best}." + caveat)  # fmt: skip
    if any(d[0] == SAME for d in tried.values()):
        return ("Validation MAE is unchanged by these settings: bigger changes are needed; next, try "
                "the phase 4 settings (python -m fusion_tuner +phase=4 -m)." + caveat)  # fmt: skip
    return ("Every setting raised validation MAE (over-adjusted); next, back off to more "
            "conservative settings." + caveat)  # fmt: skip


def write_summary(sweep_dir: str | Path, threshold: float = 0.02) -> Summary:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} not found")
    s = summarize(sweep_dir, threshold)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows({k: _fmt(v, 6) for k, v in row.items()} for row in s.rows)
    atomic_write_text(buf.getvalue(), sweep_dir / "summary.csv")
    atomic_write_text(render_markdown(sweep_dir, s), sweep_dir / "summary.md")
    _plot(s, sweep_dir / "summary.png")
    return s


def render_markdown(sweep_dir: Path, s: Summary) -> str:
    cols = ("experiment", "seed", "status", "val_mae", "delta_val_mae_pct", "decision", "train_mae",
            "test_mae", "test_r2", "gap_ratio", "best_epoch", "epochs_run", "stop_reason", "flags")  # fmt: skip
    lines = [f"# Sweep summary: {sweep_dir}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in s.rows:
        cells = [_fmt(row[c]) for c in cols]
        if row["delta_val_mae_pct"] is not None:
            cells[cols.index("delta_val_mae_pct")] = f"{row['delta_val_mae_pct']:+.1f}%"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Decisions (validation MAE, mean over seeds, against the baseline)", ""]
    for exp, (decision, delta, margin, n) in s.decisions.items():
        if exp == "baseline":
            continue
        hint = f" — {NEXT_STEP[decision]}" if decision in NEXT_STEP else ""
        lines.append(
            f"- **{exp}** ({n} run(s)): {decision}, Δ = {_fmt(delta)} (margin {_fmt(margin)}){hint}"
        )
    lines += [
        "", f"Rule: a change counts when |Δ| > max({s.threshold:g} × baseline val MAE, 2 × standard "
        "error of Δ across seeds); smaller changes are 'unchanged'.", "",
    ]  # fmt: skip
    distinct = [r for r in s.rows if r["overrides"]]
    if distinct:
        lines += ["## What distinguishes each run from the baseline", ""]
        lines += [f"- {r['experiment']} (seed {r['seed']}): {r['overrides']}" for r in distinct]
        lines.append("")
    problems = [r for r in s.rows if r["status"] != "completed"]
    if problems:
        lines += ["## Runs that failed or did not finish", ""]
        lines += [f"- {r['experiment']} (seed {r['seed']}, {r['run_dir']}): {r['status']}"
                  + (f" — {r['error']}" if r["error"] else "") for r in problems]  # fmt: skip
        lines.append("")
    if s.slurm_note:
        lines += [s.slurm_note, ""]
    lines += ["## Verdict", "", s.verdict, ""]
    return "\n".join(lines)


def _plot(s: Summary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = list(s.decisions)
    means, errs, colors = [], [], []
    for e in exps:
        vals = [r["val_mae"] for r in s.rows if r["experiment"] == e and r["val_mae"] is not None]
        m, sd = _mean_std(vals) if vals else (math.nan, 0.0)
        means.append(m)
        errs.append(sd)
        d = s.decisions[e][0]
        colors.append({DOWN: "tab:green", UP: "tab:red", SAME: "tab:grey"}.get(d, "tab:blue"))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(exps)), 4.5))
    ax.bar(
        range(len(exps)),
        [0 if math.isnan(m) else m for m in means],
        yerr=errs,
        color=colors,
        capsize=4,
    )
    for i, m in enumerate(means):
        if math.isnan(m):
            ax.text(i, 0, "no result", ha="center", va="bottom", rotation=90, fontsize=8)
    base = means[exps.index("baseline")] if "baseline" in exps else math.nan
    if not math.isnan(base):
        ax.axhline(base, color="black", ls="--", lw=1, label="baseline")
        ax.legend()
    ax.set_xticks(range(len(exps)), exps, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("validation MAE (mean ± std over seeds)")
    ax.set_title("green: down, grey: unchanged, red: up")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


NAMED_BY_DEFAULT = ("experiment", "random_seed")


def check_subdir(jobs: list[list[str]], subdir: str) -> None:
    """Refuse, before any run starts, a sweep whose run directories would collide.

    Every key whose value varies across the jobs must appear in ``hydra.sweep.subdir`` (the
    default names experiment and seed), unless the subdir is unique per job anyway.
    """
    if "hydra.job.num" in subdir or "override_dirname" in subdir:
        return
    values: dict[str, set[str]] = {}
    for job in jobs:
        for o in job:
            key, _, value = o.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    unnamed = [
        k for k, v in values.items() if len(v) > 1 and k not in NAMED_BY_DEFAULT and k not in subdir
    ]
    if unnamed:
        example = "-".join(f"{k.split('.')[-1]}${{{k}}}" for k in unnamed)
        raise ValueError(
            f"this sweep varies {', '.join(unnamed)} but hydra.sweep.subdir={subdir!r} does not name "
            f"it, so runs would share a directory. Add it, e.g. "
            f"hydra.sweep.subdir='${{experiment_name}}-seed${{random_seed}}-{example}'"
        )


def plan_jobs(hydra_cfg: Any) -> list[list[str]]:
    """The override list of every job of a sweep, as Hydra's basic sweeper expands it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = hydra_cfg.sweeper.get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items()] + list(hydra_cfg.overrides.task)
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


class SweepSummaryCallback(Callback):
    """Hydra callback: records the sweep and its job list when a multirun starts.

    The summary itself is written by ``fusion_tuner.cli.main`` once the launcher has returned
    *or failed* (Hydra skips ``on_multirun_end`` when a job fails), so that failed and missing
    runs are always listed. Configured under ``hydra.callbacks.sweep_summary``.
    """

    def __init__(self, threshold: float = 0.02) -> None:
        self.threshold = threshold

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            jobs = plan_jobs(config.hydra)
        except Exception as exc:  # private Hydra API: degrade to "found runs only", and say so
            log.warning(
                "could not expand the sweep's job list (%s); missing runs will not be listed", exc
            )
            jobs = None
        if jobs is not None:
            subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"])
            try:
                check_subdir(jobs, subdir)
            except ValueError as exc:
                # Hydra turns a callback's exceptions into warnings; this one must stop the sweep
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(2) from exc
        sweep_dir.mkdir(parents=True, exist_ok=True)
        ACTIVE_SWEEPS.append((sweep_dir, self.threshold))
        if jobs is not None:
            atomic_write_text(json.dumps({"jobs": jobs}, indent=1), sweep_dir / PLAN_FILE)


# Sweeps started in this process (the CLI writes their summaries when Hydra returns or raises).
ACTIVE_SWEEPS: list[tuple[Path, float]] = []
