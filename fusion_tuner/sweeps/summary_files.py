"""Writing a sweep's summary: ``summary.csv`` (every column), ``summary.md`` (the runs, the
decisions with their intervals and the rule, what distinguishes each run, failures, what the
next phase starts from, the verdict), ``summary.png`` and ``summary.json`` (machine-readable:
decisions, intervals, the winner and its overrides, where the sweep started and what the next
phase starts from; read by ``base_sweep=`` and by ``python -m fusion_tuner.report``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fusion_tuner.decision import (
    DOWN,
    INCONCLUSIVE,
    LEARNED_NOTHING,
    NEXT_STEP,
    NONE,
    REFERENCE,
    SAME,
    UP,
    Decision,
    rule_sentence,
)
from fusion_tuner.io import atomic_write_text, pyplot, save_figure, write_csv, write_json
from fusion_tuner.markdown import fmt, safe_markdown, table
from fusion_tuner.metrics import MIN_SKILL
from fusion_tuner.rundir import COMPLETED
from fusion_tuner.sweeps.assess import STALL_BEST_FRACTION, STALL_FACTOR, arm_record
from fusion_tuner.sweeps.chain import SUMMARY_JSON, as_overrides
from fusion_tuner.sweeps.context import context_markdown
from fusion_tuner.sweeps.sequential import SPENDING
from fusion_tuner.sweeps.summary import (
    COLUMNS,
    ArmReference,
    Summary,
    arm_advice,
    mean_std,
    summarize,
)

SUMMARY_FORMAT = 1
MARKDOWN_COLUMNS = (
    "experiment",
    "seed",
    "status",
    "val_mae",
    "val_mean_mae",
    "delta_val_mae_pct",
    "test_mae",
    "test_mean_mae",
    "delta_test_mae",
    "train_mae",
    "val_r2",
    "test_r2",
    "val_skill",
    "test_skill",
    "gap_ratio",
    "best_epoch",
    "epochs_run",
    "stop_reason",
    "flags",
)
DECISION_HEADER = (
    "experiment",
    "seeds (exp / base)",
    "Δ val MAE",
    "95% interval",
    "decision",
    "Δ test MAE",
    "notes",
)
# an arm's MAEs beside the training-mean predictor's, its skill and R² (summary and report)
REFERENCE_COLUMNS = (
    "val MAE",
    "mean predictor val MAE",
    "test MAE",
    "mean predictor test MAE",
    "skill val / test",
    "R² val / test",
    "learned?",
)
REFERENCE_HEADER = ("experiment", "seeds", *REFERENCE_COLUMNS)
# raw 95% interval in the table; the adjusted and equivalence intervals are in the notes
COLORS = {DOWN: "tab:green", UP: "tab:red", SAME: "tab:grey", INCONCLUSIVE: "tab:orange"}


def write_summary(sweep_dir: str | Path, threshold: float = 0.02) -> Summary:
    """Write ``summary.csv``, ``summary.md``, ``summary.png`` and ``summary.json`` into
    ``sweep_dir``."""
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
    write_json(sweep_dir / SUMMARY_JSON, summary_record(sweep_dir, s))
    return s


def _num(v: Any) -> Any:
    """NaN as None (JSON has no NaN)."""
    return None if isinstance(v, float) and math.isnan(v) else v


def decision_record(d: Decision) -> dict[str, Any]:
    """One decision as plain JSON."""
    return {
        "decision": d.decision,
        "n": d.n,
        "n_base": d.n_base,
        "method": d.method or None,
        "delta_val_mae": _num(d.delta),
        "delta_val_mae_pct": _num(d.delta_pct),
        "interval": [_num(d.low), _num(d.high)] if d.method else None,
        "interval_pct": [_num(d.pct(d.low)), _num(d.pct(d.high))] if d.method else None,
        "threshold_abs": _num(d.margin),
        "baseline_val_mae": _num(d.base_mean),
        "delta_test_mae": d.test_delta,
        "val_test_disagree": d.disagrees,
        "note": d.note,
        "advice": arm_advice(d) or None,
        **(arm_record(d.arm, d.base_mean) if d.arm is not None else {}),
    }


def summary_record(sweep_dir: Path, s: Summary) -> dict[str, Any]:
    """What ``summary.json`` holds."""
    winner = None
    if s.winner is not None:
        d = s.decisions[s.winner]
        winner = {
            "experiment": s.winner,
            "overrides": s.next_base.overrides if s.next_base else {},
            "command_line": as_overrides(s.next_base.overrides) if s.next_base else [],
            "decision": decision_record(d),
            "run_dirs": s.run_dirs.get(s.winner, []),
        }
    return {
        "format": SUMMARY_FORMAT,
        "sweep_dir": str(Path(sweep_dir).resolve()),
        "metric": "val_mae",
        "threshold": s.threshold,
        "confidence": s.confidence,
        "rule": procedure_sentence(s),
        "design": design_record(s),
        "base": s.base,
        "decisions": {e: decision_record(d) for e, d in s.decisions.items()},
        "winner": winner,
        "confirmation": (
            {k: _num(v) for k, v in asdict(s.confirmation).items()} if s.confirmation else None
        ),
        "next_base": s.next_base._asdict() if s.next_base else None,
        "verdict": s.verdict,
        "context": _context_record(s),
        "references": {e: asdict(r) for e, r in s.references.items()},
        "run_dirs": s.run_dirs,
        "runs": [{k: _num(v) for k, v in row.items()} for row in s.rows],
    }


def _context_record(s: Summary) -> dict[str, Any] | None:
    """The sweep's context (see :mod:`fusion_tuner.sweeps.context`) as plain JSON."""
    return asdict(s.context) if s.context is not None else None


def _pct(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:+.1f}%"


def design_record(s: Summary) -> dict[str, Any] | None:
    """The sequential design the decisions used, for ``summary.json``."""
    a = s.assessment
    if a is None:
        return None
    return {
        **asdict(a.design),
        "looks": a.design.looks,
        "looks_done": a.looks_done,
        "from": a.design_source,
        "alpha_spending": a.spending,
        "multiplicity": "Holm over the sweep's experiments (group-sequential, Maurer-Bretz)",
        "equivalence": "two one-sided t tests (TOST)",
        "tau": _num(a.tau),
        "equivalence_margin_abs": _num(a.margin),
        "seed_order": a.seed_order,
        "next_round": a.next_round,
        "baseline_skill": a.baseline_skill,
        "baseline_stalled_runs": a.baseline_stalled,
        "baseline_failed_runs": a.baseline_failed,
        "stall_rule": (
            f"best epoch <= {STALL_BEST_FRACTION:.0%} of the epochs run and validation MAE > "
            f"{STALL_FACTOR} x the median of its arm: flagged, its pair left out"
        ),
        "min_skill": MIN_SKILL,
    }


def procedure_sentence(s: Summary) -> str:
    """The decision procedure in a few sentences, with this sweep's numbers."""
    a = s.assessment
    if a is None:
        return rule_sentence(s.threshold, s.tau, s.confidence)
    de = a.design
    looks = ", ".join(map(str, de.looks))
    seq = (
        f"seeds are added round by round to open experiments only (looks at {looks} seeds per "
        f"arm), with {SPENDING} over the looks"
        if len(de.looks) > 1
        else f"one look at {de.looks[0]} seeds per arm (a fixed design)"
    )
    tau = f" = {fmt(a.tau)}" if math.isfinite(a.tau) else ""
    margin = f" = {fmt(a.margin)}" if math.isfinite(a.margin) else ""
    return (
        "Rule: each experiment's change in validation MAE against the baseline, paired by seed "
        f"(a failed or stalled run removes only its own pair); {seq}; Holm over the sweep's "
        f"experiments at family level {de.family_alpha:g} (adjusted interval: the t interval "
        "at the level the experiment was last tested at; raw: the plain 95% t interval). "
        f"✅ down / ❌ up when the procedure rejects no change and the mean change is beyond "
        f"τ = {100 * de.threshold:g}% of the baseline's mean validation MAE{tau}; ⚠️ unchanged "
        "when the two one-sided tests' interval (90% at one look) lies within "
        f"±{100 * de.equivalence_margin:g}% of it{margin}; ❓ inconclusive (open: more seeds "
        "while below the cap) otherwise. Experiments "
        f"whose runs (or the baseline's) do not beat the training-mean predictor (skill < "
        f"{MIN_SKILL:g}) are 🚫 not compared."
    )


def _arm_notes(d: Decision) -> list[str]:
    a = d.arm
    st = a.stats
    notes = [f"seeds {len(a.seeds_run)} ({a.stop})"]
    if st.n >= 2 and math.isfinite(st.adjusted[0]) and d.decision != LEARNED_NOTHING:
        notes.append(
            f"adjusted interval [{fmt(st.adjusted[0])}, {fmt(st.adjusted[1])}] (two-sided level "
            f"{st.adjusted_level:.2g}); equivalence interval {_pct(d.pct(st.equivalence[0]))} "
            f"to {_pct(d.pct(st.equivalence[1]))} (TOST at {st.equivalence_level:.2g} each side)"
        )
    if a.stalled:
        notes.append(f"stalled, left out: {', '.join(a.stalled)}")
    if a.failed:
        notes.append(f"failed or unfinished: {', '.join(a.failed)}")
    if a.skill is not None:
        notes.append(f"skill {a.skill:.2f}")
    return notes


def decision_cells(exp: str, d: Decision) -> list[str]:
    """One row of the decisions table (also used by the plan report)."""
    seeds = f"{d.n} / {d.n_base}" + (f" ({d.method})" if d.method else "")
    delta = f"{fmt(d.delta)} ({_pct(d.delta_pct)})" if math.isfinite(d.delta) else "—"
    interval = (
        f"[{fmt(d.low)}, {fmt(d.high)}] ({_pct(d.pct(d.low))} to {_pct(d.pct(d.high))})"
        if d.method
        else "— (one seed)"
        if d.decision != NONE
        else "—"
    )
    test = "—"
    if d.test_delta is not None:
        test = f"{fmt(d.test_delta)}" + (" ⚠️ sign differs from val" if d.disagrees else "")
    notes = [arm_advice(d)] if d.decision in (INCONCLUSIVE, LEARNED_NOTHING) else []
    if d.arm is not None:
        notes += _arm_notes(d)
    if d.note:
        notes.append(d.note)
    if d.decision in NEXT_STEP:
        notes.append(f"next: {NEXT_STEP[d.decision]}")
    return [exp, seeds, delta, interval, d.decision, test, "; ".join(notes)]


def learned_words(ref: ArmReference) -> str:
    """Whether an arm beat the training-mean predictor, in words."""
    if ref.val_skill is None:
        return "— (no completed run)"
    if ref.learned_nothing:
        return f"LEARNED NOTHING (skill below {MIN_SKILL:g})"
    return "learned"


def reference_cells(ref: ArmReference) -> list[str]:
    """One row of the references table (also used by the plan report)."""

    def two(a: float | None, b: float | None) -> str:
        return " / ".join("—" if v is None else f"{v:.2f}" for v in (a, b))

    return [
        ref.experiment,
        str(ref.seeds),
        fmt(ref.val_mae),
        fmt(ref.val_mean_mae),
        fmt(ref.test_mae),
        fmt(ref.test_mean_mae),
        two(ref.val_skill, ref.test_skill),
        two(ref.val_r2, ref.test_r2),
        learned_words(ref),
    ]


REFERENCE_NOTE = (
    "Mean over seeds of each MAE; the mean predictor predicts the training targets' mean for "
    "every crystal. Skill = 1 − MAE / mean-predictor MAE (median over seeds; 0: no better than "
    f"the mean); an arm whose validation skill is below {MIN_SKILL:g} learned nothing and is not "
    "compared."
)


def _base_lines(s: Summary) -> list[str]:
    """Returns where a chained sweep started ([] for a sweep that did not chain)."""
    if not s.base:
        return []
    started = (
        f"the winner **{s.base['winner']}** of `{s.base['sweep']}`"
        if s.base.get("winner")
        else f"the configuration `{s.base['sweep']}` started from (it had no ✅ winner)"
    )
    overrides = " ".join(as_overrides(s.base["overrides"])) or "(none)"
    return [
        f"This sweep's baseline is {started}: `{overrides}`; each experiment is applied on "
        "top of it.",
        "",
    ]


def _runs_table(s: Summary) -> str:
    """Returns the runs' table (:data:`MARKDOWN_COLUMNS`), the validation change in %."""
    rows = []
    for row in s.rows:
        cells = [row[c] for c in MARKDOWN_COLUMNS]
        if row["delta_val_mae_pct"] is not None:
            cells[MARKDOWN_COLUMNS.index("delta_val_mae_pct")] = f"{row['delta_val_mae_pct']:+.1f}%"
        rows.append(cells)
    return table(MARKDOWN_COLUMNS, rows, missing="")


def _decision_lines(s: Summary) -> list[str]:
    """Returns the references section (when there are references), the decisions and the rule."""
    lines = []
    if s.references:
        lines += ["## Against the training-mean predictor", ""]
        lines.append(table(REFERENCE_HEADER, [reference_cells(r) for r in s.references.values()]))
        lines += ["", REFERENCE_NOTE, ""]
    lines += [
        "## Decisions (validation MAE against the baseline, mean over seed pairs, raw 95% "
        "interval)",
        "",
    ]
    lines.append(
        table(
            DECISION_HEADER,
            [decision_cells(e, d) for e, d in s.decisions.items() if d.decision != REFERENCE],
        )
    )
    return [*lines, "", procedure_sentence(s), ""]


def _distinct_lines(s: Summary) -> list[str]:
    """Returns what distinguishes each run from the baseline ([] when nothing does)."""
    distinct: dict[tuple[str, str], list[str]] = {}
    for r in s.rows:
        if r["overrides"]:
            distinct.setdefault((r["experiment"], r["overrides"]), []).append(fmt(r["seed"]))
    if not distinct:
        return []
    return [
        "## What distinguishes each run from the baseline",
        "",
        *(
            f"- {exp} (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}): {overrides}"
            for (exp, overrides), seeds in distinct.items()
        ),
        "",
    ]


def _problem_lines(s: Summary) -> list[str]:
    """Returns the runs that failed or did not finish ([] when all completed)."""
    problems = [r for r in s.rows if r["status"] != COMPLETED]
    if not problems:
        return []
    return [
        "## Runs that failed or did not finish",
        "",
        *(
            f"- {r['experiment']} (seed {r['seed']}, {r['run_dir']}): {r['status']}"
            + (f" — {r['error']}" if r["error"] else "")
            for r in problems
        ),
        "",
    ]


def render_markdown(sweep_dir: Path, s: Summary) -> str:
    """Returns ``summary.md``: the context, the runs, the references and decisions with the
    rule, what distinguishes each run, failures, SLURM's note, the next phase and the verdict
    (made safe: names and statuses are not trusted)."""
    lines = [f"# Sweep summary: {sweep_dir}", ""]
    if s.context is not None:
        lines += [*context_markdown(s.context), ""]
    lines += _base_lines(s)
    lines += [_runs_table(s), ""]
    lines += _decision_lines(s)
    lines += _distinct_lines(s)
    lines += _problem_lines(s)
    if s.slurm_note:
        lines += [s.slurm_note, ""]
    if s.next_base is not None:
        lines += [
            "## The next phase",
            "",
            f"{s.next_base.note}. Chain it with `base_sweep={sweep_dir}`.",
            "",
        ]
    lines += ["## Verdict", "", s.verdict, ""]
    return safe_markdown("\n".join(lines))  # names and statuses are not trusted


def plot_summary(s: Summary, path: Path) -> None:
    """Left: validation MAE per experiment (each seed a dot, the mean a bar); right: the change
    against the baseline with its 95% interval and the ±threshold band, coloured by decision."""
    plt = pyplot()
    exps = list(s.decisions)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(max(10, 2.0 * len(exps)), 4.8))
    for i, e in enumerate(exps):
        vals = [r["val_mae"] for r in s.rows if r["experiment"] == e and r["val_mae"] is not None]
        color = COLORS.get(s.decisions[e].decision, "tab:blue")
        if vals:
            ax.bar(i, mean_std(vals)[0], color=color, alpha=0.45)
            ax.plot([i] * len(vals), vals, "o", color=color, ms=4)
        else:
            ax.text(i, 0, "no result", ha="center", va="bottom", rotation=90, fontsize=8)
    base = s.decisions.get("baseline")
    if base is not None and base.n:
        ref = mean_std(
            [r["val_mae"] for r in s.rows if r["experiment"] == "baseline" and r["val_mae"]]
        )[0]
        ax.axhline(ref, color="black", ls="--", lw=1, label="baseline mean")
        ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    ax.set_xticks(range(len(exps)), exps, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("validation MAE (dots: seeds, bar: mean)")
    others = [e for e in exps if s.decisions[e].decision not in (REFERENCE, NONE)]
    for i, e in enumerate(others):
        d = s.decisions[e]
        color = COLORS.get(d.decision, "tab:blue")
        if d.method:
            lo, hi = d.pct(d.low), d.pct(d.high)
            bx.errorbar(
                d.delta_pct,
                i,
                xerr=[[d.delta_pct - lo], [hi - d.delta_pct]],
                fmt="o",
                color=color,
                capsize=4,
            )
        else:
            bx.plot(d.delta_pct, i, "o", mfc="none", color=color)
    bx.axvspan(-100 * s.threshold, 100 * s.threshold, color="grey", alpha=0.15, label="±threshold")
    bx.axvline(0, color="black", lw=0.8)
    bx.set_yticks(range(len(others)), others, fontsize=8)
    bx.invert_yaxis()
    bx.set_xlabel("Δ validation MAE vs baseline, % (95% interval; hollow: one seed)")
    bx.legend(fontsize=8, loc="best")  # clear of the intervals
    fig.suptitle("green: down, grey: unchanged, red: up, orange: inconclusive", fontsize=10, y=1.0)
    fig.tight_layout()
    save_figure(fig, path)
