"""Writing a sweep's summary: ``summary.csv`` (every column), ``summary.md`` (the table, the
decisions, what distinguishes each run, failures, the verdict) and ``summary.png``."""

from __future__ import annotations

import math
from pathlib import Path

from fusion_tuner.io import atomic_write_text, pyplot, save_figure, write_csv
from fusion_tuner.markdown import fmt, table
from fusion_tuner.rundir import COMPLETED
from fusion_tuner.sweeps.summary import (
    COLUMNS,
    DOWN,
    NEXT_STEP,
    SAME,
    UP,
    Summary,
    mean_std,
    summarize,
)

MARKDOWN_COLUMNS = (
    "experiment",
    "seed",
    "status",
    "val_mae",
    "delta_val_mae_pct",
    "decision",
    "train_mae",
    "test_mae",
    "test_r2",
    "gap_ratio",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "flags",
)


def write_summary(sweep_dir: str | Path, threshold: float = 0.02) -> Summary:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} not found")
    s = summarize(sweep_dir, threshold)
    write_csv(
        sweep_dir / "summary.csv",
        COLUMNS,
        ({k: fmt(v, 6, missing="") for k, v in row.items()} for row in s.rows),
    )
    atomic_write_text(render_markdown(sweep_dir, s), sweep_dir / "summary.md")
    plot_summary(s, sweep_dir / "summary.png")
    return s


def render_markdown(sweep_dir: Path, s: Summary) -> str:
    rows = []
    for row in s.rows:
        cells = [row[c] for c in MARKDOWN_COLUMNS]
        if row["delta_val_mae_pct"] is not None:
            cells[MARKDOWN_COLUMNS.index("delta_val_mae_pct")] = f"{row['delta_val_mae_pct']:+.1f}%"
        rows.append(cells)
    lines = [f"# Sweep summary: {sweep_dir}", "", table(MARKDOWN_COLUMNS, rows, missing="")]
    lines += ["", "## Decisions (validation MAE, mean over seeds, against the baseline)", ""]
    for exp, d in s.decisions.items():
        if exp == "baseline":
            continue
        hint = f" — {NEXT_STEP[d.decision]}" if d.decision in NEXT_STEP else ""
        lines.append(
            f"- **{exp}** ({d.n} run(s)): {d.decision}, Δ = {fmt(d.delta, missing='')} "
            f"(margin {fmt(d.margin, missing='')}){hint}"
        )
    lines += [
        "",
        f"Rule: a change counts when |Δ| > max({s.threshold:g} × baseline val MAE, 2 × standard "
        "error of Δ across seeds); smaller changes are 'unchanged'.",
        "",
    ]
    distinct = [r for r in s.rows if r["overrides"]]
    if distinct:
        lines += ["## What distinguishes each run from the baseline", ""]
        lines += [f"- {r['experiment']} (seed {r['seed']}): {r['overrides']}" for r in distinct]
        lines.append("")
    problems = [r for r in s.rows if r["status"] != COMPLETED]
    if problems:
        lines += ["## Runs that failed or did not finish", ""]
        lines += [
            f"- {r['experiment']} (seed {r['seed']}, {r['run_dir']}): {r['status']}"
            + (f" — {r['error']}" if r["error"] else "")
            for r in problems
        ]
        lines.append("")
    if s.slurm_note:
        lines += [s.slurm_note, ""]
    lines += ["## Verdict", "", s.verdict, ""]
    return "\n".join(lines)


def plot_summary(s: Summary, path: Path) -> None:
    """Validation MAE per experiment (mean ± std over seeds), coloured by decision."""
    plt = pyplot()
    exps = list(s.decisions)
    means, errs, colors = [], [], []
    for e in exps:
        vals = [r["val_mae"] for r in s.rows if r["experiment"] == e and r["val_mae"] is not None]
        m, sd = mean_std(vals) if vals else (math.nan, 0.0)
        means.append(m)
        errs.append(sd)
        colors.append(
            {DOWN: "tab:green", UP: "tab:red", SAME: "tab:grey"}.get(
                s.decisions[e].decision, "tab:blue"
            )
        )
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(exps)), 4.5))
    heights = [0 if math.isnan(m) else m for m in means]
    ax.bar(range(len(exps)), heights, yerr=errs, color=colors, capsize=4)
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
    save_figure(fig, path)
