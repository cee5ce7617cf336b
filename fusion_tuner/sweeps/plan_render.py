"""Drawing the plan report: the :class:`fusion_tuner.document.Document` behind ``report.md`` and
``report.html``, and its figures, from the model (:mod:`fusion_tuner.sweeps.plan_model`) and
the criteria (:mod:`fusion_tuner.sweeps.plan_criteria`) only.

In order: the context, the path from the original baseline to the best configuration, the
plan's success criteria, the learning curves and test parity of the two, then per sweep its
decisions, references, verdict, figures and runs (with links relative to the report's folder,
so they open from disk). The figures are written as PNG files into the report's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusion_tuner.decision import REFERENCE, Decision
from fusion_tuner.document import Document, link
from fusion_tuner.markdown import fmt
from fusion_tuner.metrics import learned_nothing
from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.chain import as_overrides
from fusion_tuner.sweeps.context import Context, context_banners, context_items, duration
from fusion_tuner.sweeps.figures import plot_arm_curves, plot_parity
from fusion_tuner.sweeps.plan_criteria import MIN_FLOOR_PAIRS, CriteriaResult
from fusion_tuner.sweeps.plan_model import (
    PathFigures,
    PathStep,
    PlanModel,
    RunEntry,
    SweepResult,
    stats_text,
)
from fusion_tuner.sweeps.summary_files import (
    DECISION_HEADER,
    REFERENCE_COLUMNS,
    REFERENCE_HEADER,
    REFERENCE_NOTE,
    decision_cells,
    learned_words,
    plot_summary,
    procedure_sentence,
    reference_cells,
)

CURVES_NOTE = (
    "Median over seeds per epoch, the band the range over seeds (a seed that stopped early counts "
    "only in the epochs it ran); dashed: eval-mode training MAE, the gap ratio's; ▼: each seed's "
    "best epoch; dotted: the training-mean predictor's validation MAE (a curve that does not get "
    "well below it learned nothing). An arm whose best epochs sit at its last epoch was still "
    "improving when it stopped."
)
PATH_HEADER = (
    "step",
    "configuration",
    "overrides of conf/",
    "seeds",
    *REFERENCE_COLUMNS,
    "gap ratio",
    "Δ val in its sweep [95%]",
)
RUNS_HEADER = (
    "run",
    "experiment",
    "seed",
    "status",
    "val MAE (mean predictor)",
    "test MAE (mean predictor)",
    "skill val / test",
    "files",
)
CRITERIA_NOTE = (
    "From tuning-plan.md, 'How each run is judged': validation MAE lower, the gap below "
    "2x, and the CKA pattern between a baseline and a tuned checkpoint (text_fine low: "
    "fusion acts; text_final and fused between 0.85 and 0.92: its effect survives). "
    "The plan's absolute targets (validation MAE from ~10 to ~8, train MAE ~2-3) are not "
    "checked and their units need checking: they cannot be optb88vdw_bandgap MAE in eV "
    "(on the leaderboard's split the median predictor scores 0.70 eV and the largest gap "
    "is 9.6 eV)."
)


def render_report(model: PlanModel, criteria: CriteriaResult | None, out: Path) -> Document:
    """Draw the plan report.

    Args:
        model: the plan's model.
        criteria: the criteria (None exactly when the model has no path).
        out: the report's folder: figures are written into it, links are relative to it.

    Returns:
        The document (``report.md`` is its ``markdown(out)``, ``report.html`` its ``html()``).
    """
    doc = Document("Tuning plan report")
    _intro(doc, model)
    doc.heading("From the original baseline to the best configuration")
    if model.figures is not None and criteria is not None:
        _path(doc, model.path)
        _criteria(doc, criteria)
        _path_figures(doc, model.figures, out, model.unit)
    else:
        doc.paragraph("No sweep with a completed baseline run: there is no path to show yet.")
    for sr in model.sweep_results:
        _sweep(doc, sr, out, model.unit)
    return doc


def _intro(doc: Document, model: PlanModel) -> None:
    """The context's banners and fields and what the report covers."""
    for banner in context_banners(model.context):
        doc.banner(banner)
    doc.fields(context_items(model.context))
    doc.paragraph(
        f"{len(model.sweeps)} sweep(s) under {', '.join(f'`{p}`' for p in model.paths)}; every "
        "number is recomputed from the run directories. Decisions compare each experiment with "
        "the baseline of its own sweep on validation MAE (95% t interval of the change; see the "
        "rule under each table)."
    )


def _change(d: Decision | None) -> str:
    """Returns a step's change of validation MAE in its sweep, in % with its interval."""
    if d is None or not d.method:
        return "—"
    return f"{d.delta_pct:+.1f}% [{d.pct(d.low):+.1f}%, {d.pct(d.high):+.1f}%]"


def _path_row(p: PathStep) -> list[str]:
    """Returns one row of the path's table."""
    st, ref = p.step, p.reference
    return [
        str(p.index),
        st.label,
        " ".join(f"`{o}`" for o in as_overrides(st.overrides)) or "(conf/ baseline)",
        str(len(st.runs)),
        stats_text(p.val),
        stats_text(p.val_mean),
        stats_text(p.test),
        stats_text(p.test_mean),
        reference_cells(ref)[6],
        reference_cells(ref)[7],
        learned_words(ref),
        stats_text(p.gap),
        _change(st.decision),
    ]


def _path(doc: Document, path: list[PathStep]) -> None:
    """The path's table, the best configuration, and a banner for steps that learned nothing."""
    doc.table(PATH_HEADER, [_path_row(p) for p in path])
    best = path[-1].step
    doc.paragraph(
        f"Best configuration: **{best.label}**; as a command line without chaining: "
        + (" ".join(f"`{o}`" for o in as_overrides(best.overrides)) or "conf/'s baseline")
        + ". MAE values are mean ± sd over seeds; skill and R² are medians. "
        + REFERENCE_NOTE
    )
    nothing = [p for p in path if p.reference.learned_nothing]
    if nothing:
        doc.banner(
            "LEARNED NOTHING: "
            + "; ".join(
                f"step {p.index} ({p.step.label}) has median validation skill "
                f"{p.reference.val_skill:.2f}: validation MAE {fmt(p.reference.val_mae)} "
                f"against {fmt(p.reference.val_mean_mae)} for predicting the training mean"
                for p in nothing
            )
            + ". Its comparisons and criteria say nothing about the model; make the runs "
            "learn first (more epochs or data, check the learning rate)."
        )


def _criteria(doc: Document, criteria: CriteriaResult) -> None:
    """The criteria's table, how they were read, and the CKA heatmap."""
    doc.heading("The plan's success criteria (best configuration vs the original baseline)")
    doc.table(
        ["criterion", "target", "value", "status"],
        [[c.name, c.target, c.value, c.status] for c in criteria.criteria],
    )
    doc.paragraph(CRITERIA_NOTE)
    result = criteria.measured.result
    if result is not None:
        doc.paragraph(_cka_paragraph(result))
    if result is not None and criteria.measured.heatmap is not None:
        doc.image(criteria.measured.heatmap, "CKA original vs best")


def _cka_paragraph(result: dict[str, Any]) -> str:
    """Returns how the CKA criteria were read, and the CKA within each of the two models."""
    text = (
        "CKA criteria: debiased linear CKA (unbiased HSIC; the biased estimator is near 0.9 for "
        "independent random features at n = 30 and 256 widths) of same-named stages of the two "
        "models on the test split, read against the seed-to-seed floor: the same CKA between two "
        f"seeds of one configuration (the seed pairs of both configurations; at least "
        f"{MIN_FLOOR_PAIRS} needed). A value not below the floor's interval means the tuned model "
        "is no less like the baseline than a reseed is."
    )
    floor = result.get("seed_floor", {})
    if "error" in floor:
        text += f" The floor could not be computed: {floor['error']}."
    within = result.get("within") or {}
    parts = []
    for name, values in within.items():
        cells = [f"{k.replace('~', ' ↔ ')} {fmt(v, 3)}" for k, v in values.items()]
        if cells:
            parts.append(f"{name} {', '.join(cells)}")
    if parts:
        text += (
            " Within each model (debiased, test split; does the fused representation follow the "
            "graph or the text?): " + "; ".join(parts) + "."
        )
    return text


def _path_figures(doc: Document, figures: PathFigures, out: Path, unit: str) -> None:
    """Learning curves and test parity of the original baseline and the best configuration,
    drawn into ``out``."""
    curves, parity = figures.curves, figures.parity
    doc.heading("Learning curves and test parity: original baseline vs best", 3)
    if all(c is not None for c in curves):
        fig = out / "curves.png"
        plot_arm_curves(curves[0], curves[1:], fig, unit)
        doc.image(fig, "learning curves, original baseline vs best")
        doc.paragraph(CURVES_NOTE)
    else:
        doc.paragraph("(no history.csv in any run of one of the two: no curves)")
    if all(p is not None for p in parity):
        fig = out / "parity.png"
        plot_parity([p for p in parity if p is not None], fig, unit)
        doc.image(fig, "test parity, original baseline vs best")
    else:
        doc.paragraph("(no predictions_test.csv in any run of one of the two: no parity plot)")


def _sweep_context(ctx: Context) -> str:
    """Returns one line of a sweep's own context: budget, crystals, training, seeds, wall time."""
    items = dict(context_items(ctx))
    wall = f"{duration(ctx.total_wall_s)} of runs" if ctx.total_wall_s is not None else "unknown"
    return (
        f"Budget {items['budget']}; crystals {items['crystals']}; {items['training']}; "
        f"{items['runs']}; wall time {wall}."
    )


def _sweep(doc: Document, sr: SweepResult, out: Path, unit: str) -> None:
    """One sweep: where it started, its decisions, references, verdict and figures, its runs."""
    sw, s, i = sr.sweep, sr.sweep.summary, sr.index
    doc.heading(f"Sweep {i}: {sw.label}")
    if s.context is not None:
        doc.paragraph(_sweep_context(s.context))
    if s.base:
        start = (
            f"the winner {s.base['winner']} of `{s.base['sweep']}`"
            if s.base.get("winner")
            else f"what `{s.base['sweep']}` started from (no ✅ winner there)"
        )
        doc.paragraph(f"Started from {start}.")
    doc.table(
        DECISION_HEADER,
        [decision_cells(e, d) for e, d in s.decisions.items() if d.decision != REFERENCE],
    )
    doc.paragraph(procedure_sentence(s))
    if s.references:
        doc.table(REFERENCE_HEADER, [reference_cells(r) for r in s.references.values()])
    doc.paragraph(f"**Verdict:** {s.verdict}")
    fig = out / f"sweep{i}.png"
    plot_summary(s, fig)
    doc.image(fig, f"sweep {sw.label}")
    _sweep_curves(doc, sr, out, unit)
    _sweep_runs(doc, sr, out)


def _sweep_curves(doc: Document, sr: SweepResult, out: Path, unit: str) -> None:
    """The learning curves of every arm of a sweep, the baseline on the same axes."""
    label = sr.sweep.label
    if not any(c is not None for c in sr.curves.values()):
        doc.paragraph("(no run of this sweep has a history.csv: no learning curves)")
        return
    doc.heading(f"Learning curves of every arm of {label}", 3)
    curves = dict(sr.curves)
    base = curves.pop("baseline", None)
    fig = out / f"sweep{sr.index}_curves.png"
    plot_arm_curves(base, [c for c in curves.values() if c is not None], fig, unit)
    doc.image(fig, f"learning curves of {label}")
    doc.paragraph(CURVES_NOTE)


def _with_reference(r: Run, split: str) -> str:
    """Returns ``0.93 (1.03)``: a run's MAE with the training-mean predictor's beside it."""
    mae = r.result(split)
    if mae is None:
        return "—"
    return f"{fmt(mae)} ({fmt(r.result(split, 'mean_predictor_mae'))})"


def _skill_words(r: Run) -> str:
    """Returns a run's validation / test skill, marked when it learned nothing."""
    val, test = r.result("val", "skill"), r.result("test", "skill")
    if val is None:
        return "—"
    words = f"{val:.2f} / " + (f"{test:.2f}" if test is not None else "—")
    return words + (" LEARNED NOTHING" if learned_nothing(val) else "")


def _run_row(entry: RunEntry, out: Path) -> list[str]:
    """Returns one row of a sweep's runs table, with links relative to ``out``."""
    r = entry.run
    if r.files is None:
        return [r.name, r.experiment, fmt(r.seed), r.status, "—", "—", "—", "(no directory)"]
    files = [link(f, r.path / f, out) for f in entry.files]
    return [
        link(r.name, r.path, out),
        r.experiment,
        fmt(r.seed),
        r.status,
        _with_reference(r, "val"),
        _with_reference(r, "test"),
        _skill_words(r),
        " · ".join(files) or "—",
    ]


def _sweep_runs(doc: Document, sr: SweepResult, out: Path) -> None:
    """A sweep's runs with their files, and a link to the sweep's own summary."""
    doc.heading(f"Runs of {sr.sweep.label}", 3)
    if sr.summary_md is not None:
        doc.paragraph(f"The sweep's own summary: {link('summary.md', sr.summary_md, out)}.")
    doc.table(RUNS_HEADER, [_run_row(e, out) for e in sr.runs])
