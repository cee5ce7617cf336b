"""The plan report's model: the numbers of :mod:`fusion_tuner.sweeps.plan_report`, computed from
the loaded sweeps (:mod:`fusion_tuner.sweeps.plan_load`) by pure functions that return
dataclasses.

* **The path** (:func:`chain_path`): the chain of ``base_sweep`` links that ends in the latest
  sweep with a baseline, from the original baseline through each sweep's confirmed ✅ winner (a
  sweep without one keeps the configuration, shown by its baseline runs); per step
  (:class:`PathStep`) the MAEs and gap ratio over seeds (:class:`SeedStats`) and the arm beside
  the training-mean predictor.
* **The path's figures** (:class:`PathFigures`): learning curves and test parity of the original
  baseline and the best configuration.
* **Per sweep** (:class:`SweepResult`): the learning curves of every arm and each run's files.

Nothing here writes, prints or plots. It only reads: run files through
:class:`fusion_tuner.rundir.Run` as they are asked for, whether the files the report links to
exist, and (for the context) the checkout's git revision. :func:`plan_record` is what
``report.json`` holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner.decision import NONE, Decision, mean_sd
from fusion_tuner.markdown import fmt
from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.context import Context, build_context
from fusion_tuner.sweeps.figures import ArmCurve, ArmParity, arm_curve, arm_parity
from fusion_tuner.sweeps.plan_load import Sweep
from fusion_tuner.sweeps.summary import ArmReference, arm_reference
from fusion_tuner.sweeps.summary_files import decision_record

# The files of a run the report links to, when the run has them.
RUN_FILES = ("metrics.json", "history.csv", "curves.png", "train.log", ".hydra/config.yaml")


@dataclass
class Step:
    """One step of the path from the original baseline to the best configuration."""

    sweep: Sweep
    experiment: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None

    @property
    def runs(self) -> list[Run]:
        """The step's completed selecting runs."""
        return self.sweep.arm(self.experiment)


def _chain(sweeps: list[Sweep], last: Sweep) -> list[Sweep]:
    """Returns the sweeps ``last`` chains from through ``base_sweep``, the first first."""
    by_path = {s.path.resolve(): s for s in sweeps}
    chain = [last]
    while chain[0].summary.base and chain[0].summary.base.get("sweep"):
        prev = by_path.get(Path(chain[0].summary.base["sweep"]).resolve())
        if prev is None or prev in chain:
            break
        chain.insert(0, prev)
    return chain


def _chain_step(s: Sweep, root: Sweep) -> Step | None:
    """Returns the step a sweep of the chain adds: its confirmed winner, else (not for the
    chain's first sweep, whose baseline is the original) its baseline runs with the
    configuration kept; None for the first sweep without a winner."""
    nb = s.summary.next_base
    handed = nb.winner if nb is not None else None  # a confirmed winner only
    if handed is not None:
        label = f"{s.label}: ✅ winner {handed}"
        return Step(s, handed, label, dict(nb.overrides) if nb else {}, s.summary.decisions[handed])
    if s is root:
        return None
    unconfirmed = (
        f" ({s.summary.winner} won the selection, not confirmed)" if s.summary.winner else ""
    )
    label = f"{s.label}: no ✅ winner{unconfirmed}, configuration kept"
    return Step(s, "baseline", label, dict(nb.overrides) if nb else {}, None)


def chain_path(sweeps: list[Sweep]) -> list[Step]:
    """The path from the original baseline to the best configuration (see the module docstring).

    Returns:
        The steps, the original baseline first and the best configuration last; [] when no
        sweep has a completed baseline run.
    """
    with_base = [s for s in sweeps if s.arm("baseline")]
    if not with_base:
        return []
    chain = _chain(sweeps, with_base[-1])
    root = chain[0]
    start = dict(root.summary.base["overrides"]) if root.summary.base else {}
    steps = [Step(root, "baseline", f"original baseline ({root.label})", start, None)]
    for s in chain:
        step = _chain_step(s, root)
        if step is not None:
            steps.append(step)
    return steps


@dataclass(frozen=True)
class SeedStats:
    """Mean and sd over seeds of one number (sd exactly 0 when every seed has the same value)."""

    mean: float
    sd: float
    n: int


def seed_stats(runs: list[Run], split: str = "val", key: str = "mae") -> SeedStats | None:
    """Mean and sd over ``runs`` of a result (``key="gap_ratio"``: of ``metrics.json``'s).

    Returns:
        The statistics, or None when no run has the value.
    """
    vals = [
        v
        for v in (
            (r.metrics.get("gap_ratio") if key == "gap_ratio" else r.result(split, key))
            for r in runs
        )
        if v is not None
    ]
    if not vals:
        return None
    m, sd = mean_sd([float(v) for v in vals])
    if max(vals) == min(vals):  # e.g. the mean predictor's MAE on one split: no rounding noise
        sd = 0.0
    return SeedStats(m, sd, len(vals))


def stats_text(stats: SeedStats | None) -> str:
    """Returns ``mean ± sd`` (the mean alone for one seed, ``—`` for None)."""
    if stats is None:
        return "—"
    return f"{fmt(stats.mean)} ± {fmt(stats.sd, 2)}" if stats.n > 1 else fmt(stats.mean)


@dataclass(frozen=True)
class PathStep:
    """One step of the path with its numbers over the step's seeds."""

    index: int
    step: Step
    reference: ArmReference
    val: SeedStats | None
    val_mean: SeedStats | None
    test: SeedStats | None
    test_mean: SeedStats | None
    gap: SeedStats | None

    def record(self) -> dict[str, Any]:
        """Returns the step as ``report.json``'s ``path`` holds it."""
        st = self.step
        return {
            "sweep": str(st.sweep.path),
            "experiment": st.experiment,
            "label": st.label,
            "overrides": st.overrides,
            "run_dirs": [str(r.path) for r in st.runs],
            "val_mae": [r.val_mae for r in st.runs],
            "test_mae": [r.result("test") for r in st.runs],
            "gap_ratio": [r.metrics.get("gap_ratio") for r in st.runs],
            "reference": asdict(self.reference),
        }


def path_step(index: int, step: Step) -> PathStep:
    """Returns the :class:`PathStep` of the ``index``-th step."""
    runs = step.runs
    return PathStep(
        index,
        step,
        arm_reference(step.experiment, runs),
        seed_stats(runs),
        seed_stats(runs, "val", "mean_predictor_mae"),
        seed_stats(runs, "test"),
        seed_stats(runs, "test", "mean_predictor_mae"),
        seed_stats(runs, key="gap_ratio"),
    )


@dataclass(frozen=True)
class PathFigures:
    """Learning curves and test parity of the original baseline and the best configuration,
    every seed of each (one arm when the best is the original); None where an arm has no file."""

    curves: list[ArmCurve | None]
    parity: list[ArmParity | None]

    def curves_record(self) -> list[dict[str, Any]]:
        """Returns the curves as ``report.json``'s ``path_curves`` holds them."""
        return [asdict(c) for c in self.curves if c is not None]

    def parity_record(self) -> list[dict[str, Any]]:
        """Returns the parity summaries (without the points) as ``path_parity`` holds them."""
        return [
            {k: v for k, v in asdict(p).items() if k not in ("target", "prediction")}
            for p in self.parity
            if p is not None
        ]


def path_figures(original: Step, best: Step) -> PathFigures:
    """Returns the :class:`PathFigures` of the two configurations."""
    steps = [("original baseline", original)]
    if best.runs != original.runs:
        # plain words: a figure's font may lack the decision glyphs of ``best.label``
        steps.append((f"best: {best.experiment} of {best.sweep.label}", best))
    return PathFigures(
        [arm_curve(name, st.runs) for name, st in steps],
        [arm_parity(name, st.runs) for name, st in steps],
    )


@dataclass(frozen=True)
class RunEntry:
    """One run of a sweep with the names of the :data:`RUN_FILES` its directory holds."""

    run: Run
    files: tuple[str, ...]


@dataclass(frozen=True)
class SweepResult:
    """One sweep of the plan: its place in start order (from 1), the learning curves of each
    experiment (the baseline first) and its runs."""

    index: int
    sweep: Sweep
    curves: dict[str, ArmCurve | None]
    runs: list[RunEntry]
    # the sweep's own summary.md, when it has one
    summary_md: Path | None

    def record(self) -> dict[str, Any]:
        """Returns the sweep as ``report.json``'s ``sweeps`` holds it."""
        sw, s = self.sweep, self.sweep.summary
        return {
            "path": str(sw.path),
            "label": sw.label,
            "started": sw.started,
            "threshold": s.threshold,
            "base": s.base,
            "winner": s.winner,
            "decisions": {
                e: decision_record(d) for e, d in s.decisions.items() if d.decision != NONE
            },
            "verdict": s.verdict,
            "references": {e: asdict(r) for e, r in s.references.items()},
            "curves": {c.label: asdict(c) for c in self.curves.values() if c is not None},
        }


def sweep_result(index: int, sw: Sweep) -> SweepResult:
    """Returns the :class:`SweepResult` of the ``index``-th sweep."""
    experiments = sorted({r.experiment for r in sw.runs}, key=lambda e: (e != "baseline", e))
    curves = {e: arm_curve(e, sw.arm(e)) for e in experiments}
    runs = [
        RunEntry(
            r,
            () if r.files is None else tuple(f for f in RUN_FILES if (r.path / f).is_file()),
        )
        for r in sw.runs
    ]
    summary_md = sw.path / "summary.md"
    return SweepResult(index, sw, curves, runs, summary_md if summary_md.is_file() else None)


@dataclass(frozen=True)
class PlanModel:
    """Everything the plan report shows except the criteria (see the module docstring)."""

    paths: list[Path]
    sweeps: list[Sweep]
    context: Context
    # the target's unit when the runs share one target, else ""
    unit: str
    steps: list[Step]
    path: list[PathStep]
    # None without a path
    figures: PathFigures | None
    sweep_results: list[SweepResult]

    @property
    def learned_nothing(self) -> list[PathStep]:
        """The path's steps whose runs learned nothing."""
        return [p for p in self.path if p.reference.learned_nothing]


def compute_plan(paths: list[Path], sweeps: list[Sweep]) -> PlanModel:
    """Returns the :class:`PlanModel` of the loaded ``sweeps`` (found under ``paths``)."""
    context = build_context([r for sw in sweeps for r in sw.runs])
    steps = chain_path(sweeps)
    return PlanModel(
        paths,
        sweeps,
        context,
        context.units[0] if len(context.units) == 1 else "",
        steps,
        [path_step(i, st) for i, st in enumerate(steps)],
        path_figures(steps[0], steps[-1]) if steps else None,
        [sweep_result(i, sw) for i, sw in enumerate(sweeps, start=1)],
    )


def plan_record(
    model: PlanModel, criteria: list[dict[str, Any]], cka: dict[str, Any] | None
) -> dict[str, Any]:
    """What ``report.json`` holds (before NaN becomes null).

    Args:
        model: the plan's model.
        criteria: the criteria's records (:mod:`fusion_tuner.sweeps.plan_criteria`).
        cka: the CKA result the criteria read, or None.

    Returns:
        ``context``, ``sweeps``, ``path``, ``criteria`` and ``cka``; with a path also
        ``learned_nothing``, ``path_curves`` and ``path_parity``.
    """
    numbers: dict[str, Any] = {
        "context": asdict(model.context),
        "sweeps": [sr.record() for sr in model.sweep_results],
        "path": [p.record() for p in model.path],
        "criteria": criteria,
        "cka": cka,
    }
    if model.figures is not None:
        numbers["learned_nothing"] = [p.step.label for p in model.learned_nothing]
        numbers["path_curves"] = model.figures.curves_record()
        numbers["path_parity"] = model.figures.parity_record()
    return numbers
