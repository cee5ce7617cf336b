"""The plan's success criteria (``tuning-plan.md``, "How each run is judged") for the best
configuration against the original baseline, evaluated on the plan report's model
(:mod:`fusion_tuner.sweeps.plan_model`).

* **Validation MAE lower**: the 95% interval of the change (by
  :func:`fusion_tuner.decision.decide`) entirely below 0; on the winner's confirmation
  runs on fresh seeds when there are any, never on the runs that selected it, with their test
  MAE.
* **Train–validation gap ratio** below :data:`GAP_TARGET` (mean over seeds); not read as met
  when the runs learned nothing.
* **CKA** between the two checkpoints of the lowest common seed (:data:`CKA_TARGETS`), each read
  against the seed-to-seed CKA of one configuration (:func:`cka_verdict`).

A criterion that cannot be checked says why. Pure: the CKA is measured by the report
(:func:`fusion_tuner.sweeps.plan_report.measure_cka`, which runs the models) and handed in as a
:class:`CkaMeasurement`; nothing here reads checkpoints, writes or prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner.config import flatten, is_result_neutral
from fusion_tuner.decision import decide, mean_sd, t_critical
from fusion_tuner.markdown import fmt
from fusion_tuner.metrics import MIN_SKILL
from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.plan_model import Step, seed_stats, stats_text
from fusion_tuner.sweeps.summary import arm_reference

# The plan's CKA pattern: stage -> (low, high), linear CKA between baseline and tuned checkpoints.
CKA_TARGETS = {"text_fine": (0.2, 0.4), "text_final": (0.85, 0.92), "fused": (0.85, 0.92)}
GAP_TARGET = 2.0
MET, NOT_MET, NOT_CHECKED = "✅ met", "❌ not met", "— not checked"
# The CKA criteria's noise floor: debiased CKA between two seeds of one configuration.
MIN_FLOOR_PAIRS = 3
VAL_NAME, VAL_TARGET = "validation MAE lower", "95% interval of Δ below 0"
GAP_NAME = "train–validation gap ratio"


@dataclass(frozen=True)
class Criterion:
    """One criterion: what it asks, the value found, and whether it is met (None: not
    checked, ``why`` says why; for a criterion not met ``why`` may add detail)."""

    name: str
    target: str
    value: str
    met: bool | None
    why: str = ""

    @property
    def status(self) -> str:
        """Returns ``✅ met``, ``❌ not met`` or ``— not checked``, with ``(why)`` when given."""
        status = NOT_CHECKED if self.met is None else MET if self.met else NOT_MET
        return status + (f" ({self.why})" if self.why else "")

    def record(self) -> dict[str, Any]:
        """Returns the criterion as ``report.json``'s ``criteria`` holds it."""
        return {
            "criterion": self.name,
            "target": self.target,
            "value": self.value,
            "met": self.met,
            "status": self.status,
        }


def cka_floor(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval over seed pairs of the seed-to-seed CKA (pairs that share a run
    are not independent, so the interval is indicative).

    Returns:
        ``(mean, low, high)``.
    """
    m, sd = mean_sd(values)
    half = t_critical(len(values) - 1) * sd / math.sqrt(len(values))
    return m, m - half, m + half


def _floor_text(values: list[float]) -> str:
    """Returns the floor in words: its mean and interval over the seed pairs."""
    if len(values) < 2:
        return f"{values[0]:.3f} (1 seed pair)"
    m, lo, hi = cka_floor(values)
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}] over {len(values)} seed pairs"


def cka_verdict(value: float, floor: list[float], lo: float, hi: float) -> tuple[bool | None, str]:
    """The plan's CKA criterion read against the seed-to-seed floor of the same stage.

    Not measurable with fewer than :data:`MIN_FLOOR_PAIRS` seed pairs, or when the floor's 95%
    interval is wider than the target range (seed noise alone would move a value across it).
    Not met when the value is not below the floor's interval: the baseline and the tuned model
    are no less alike than two seeds of one configuration, so the value says nothing about
    fusion. Otherwise met when it lies in ``[lo, hi]``.

    Returns:
        ``(met, why)``: met None when not measurable; ``why`` "" when met.
    """
    if len(floor) < MIN_FLOOR_PAIRS:
        return None, (
            f"not measurable at this size: {len(floor)} seed pair(s) of one configuration for "
            f"the noise floor, which needs {MIN_FLOOR_PAIRS}"
        )
    m, f_lo, f_hi = cka_floor(floor)
    if f_hi - f_lo > hi - lo:
        return None, (
            f"not measurable at this size: seed-to-seed CKA alone spans [{f_lo:.2f}, {f_hi:.2f}]"
            f", wider than the target range {lo:g}–{hi:g}"
        )
    if value >= f_lo:
        return False, (
            f"no lower than two seeds of one configuration ({m:.2f} [{f_lo:.2f}, {f_hi:.2f}]): "
            "the tuned model differs from the baseline no more than a reseed does"
        )
    if not lo <= value <= hi:
        return False, f"outside {lo:g}–{hi:g}"
    return True, ""


def _data_differences(a: Run, b: Run) -> list[str]:
    """Returns the result-affecting dataset and budget keys in which two runs differ."""
    fa, fb = flatten(a.settings), flatten(b.settings)
    keys = sorted(
        k
        for k in set(fa) | set(fb)
        if k.split(".")[0] in ("dataset", "budget")
        and not is_result_neutral(k)
        and fa.get(k) != fb.get(k)
    )
    return keys


def _by_seed(runs: list[Run]) -> dict[int, float] | list[float]:
    """Returns the runs' validation MAEs by seed (a plain list when seeds are missing or
    repeat)."""
    seeds = [r.seed for r in runs]
    if None in seeds or len(set(seeds)) != len(seeds):
        return [r.val_mae for r in runs if r.val_mae is not None]
    return {r.seed: r.val_mae for r in runs if r.val_mae is not None}  # type: ignore[misc]


@dataclass(frozen=True)
class Comparison:
    """The best configuration against the original baseline, as the criteria read them."""

    original: Step
    best: Step
    orig_runs: list[Run]
    best_runs: list[Run]
    # the two configurations' runs of their lowest common seed (None: no common seed)
    pair: tuple[Run, Run] | None
    # why the two cannot be compared ("" when they can)
    why_not: str


def compare(original: Step, best: Step) -> Comparison:
    """Returns the :class:`Comparison` of ``best`` against ``original``."""
    orig_runs, best_runs = original.runs, best.runs
    same = best.sweep is original.sweep and best.experiment == original.experiment
    pair = None
    common = sorted(
        {r.seed for r in orig_runs if r.seed is not None}
        & {r.seed for r in best_runs if r.seed is not None}
    )
    if common:
        s0 = common[0]
        pair = (
            next(r for r in orig_runs if r.seed == s0),
            next(r for r in best_runs if r.seed == s0),
        )
    why_not = ""
    if same:
        why_not = "no ✅ winner on the path yet: the best configuration is the original baseline"
    elif not orig_runs or not best_runs:
        why_not = "no completed runs of one of the two configurations"
    elif differences := _data_differences(orig_runs[0], best_runs[0]):
        why_not = f"the runs differ in {', '.join(differences)}: not comparable"
    return Comparison(original, best, orig_runs, best_runs, pair, why_not)


def _confirmation_words(sel_best: list[Run], sel_orig: list[Run]) -> str:
    """Returns which confirmation runs the interval used and their mean test MAEs."""
    tests = [t for t in (r.result("test") for r in sel_best) if t is not None]
    base_tests = [t for t in (r.result("test") for r in sel_orig) if t is not None]
    words = f"; on the confirmation runs (seeds {', '.join(str(r.seed) for r in sel_best)})"
    if tests and base_tests:
        words += f", test MAE {fmt(mean_sd(tests)[0])} against {fmt(mean_sd(base_tests)[0])}"
    return words


def validation_criterion(cmp: Comparison, threshold: float) -> Criterion:
    """Validation MAE lower: the 95% interval of the change entirely below 0.

    On the confirmation runs on fresh seeds when there are any: the selecting runs chose the
    winner, so re-testing on them would pass by construction (the winner's curse).

    Returns:
        The criterion (not checked without an interval or when the two are not comparable).
    """
    if cmp.why_not:
        return Criterion(VAL_NAME, VAL_TARGET, "—", None, cmp.why_not)
    best, original = cmp.best, cmp.original
    conf_best = best.sweep.arm(best.experiment, confirmation=True)
    conf_orig = original.sweep.arm(original.experiment, confirmation=True)
    if conf_best:
        sel_best, sel_orig = conf_best, conf_orig or cmp.orig_runs
    else:
        sel_best, sel_orig = cmp.best_runs, cmp.orig_runs
    d = decide(_by_seed(sel_best), _by_seed(sel_orig), threshold)
    value = f"Δ {fmt(d.delta)} ({d.delta_pct:+.1f}%)" + (
        f", 95% interval [{fmt(d.low)}, {fmt(d.high)}] ({d.method}, {d.n} / {d.n_base} seeds)"
        if d.method
        else ", no interval (one seed)"
    )
    if conf_best:
        value += _confirmation_words(sel_best, sel_orig)
    else:
        value += "; on the selecting runs (no confirmation runs: the winner's curse applies)"
    met = None if not d.method else d.high < 0
    return Criterion(
        VAL_NAME, VAL_TARGET, value, met, "" if d.method else "a single seed gives no interval"
    )


def gap_criterion(cmp: Comparison) -> Criterion:
    """Train–validation gap ratio below :data:`GAP_TARGET` (mean over the best's seeds).

    Returns:
        The criterion (not checked without a gap ratio, or when the runs learned nothing: an
        underfit model meets it trivially).
    """
    best_runs = cmp.best_runs
    gaps = [float(r.metrics["gap_ratio"]) for r in best_runs if r.metrics.get("gap_ratio")]
    if not gaps:
        return Criterion(GAP_NAME, "below 2", "—", None, "no result")
    m = mean_sd(gaps)[0]
    ref = arm_reference(cmp.best.experiment, best_runs)
    underfit = (
        f"; the runs learned nothing (median validation skill {ref.val_skill:.2f} < "
        f"{MIN_SKILL:g}): an underfit model meets this trivially"
        if ref.learned_nothing and ref.val_skill is not None
        else ""
    )
    original = stats_text(seed_stats(cmp.orig_runs, key="gap_ratio"))
    return Criterion(
        GAP_NAME,
        f"below {GAP_TARGET:g}",
        f"{fmt(m)} (mean of {len(gaps)}; original {original})" + underfit,
        None if underfit else m < GAP_TARGET,
        "the runs learned nothing" if underfit else still_improving(best_runs),
    )


def still_improving(runs: list) -> str:
    """Returns a caveat when most of ``runs`` had their best epoch at their last (they stopped
    while still improving, so their gap is that of a model that had not converged), else ""."""
    last = [
        r
        for r in runs
        if r.metrics.get("best_epoch")
        and r.metrics.get("best_epoch") == r.metrics.get("epochs_run")
    ]
    if 2 * len(last) <= len(runs):
        return ""
    return (
        f"best epoch the last in {len(last)} of {len(runs)} runs: still improving when they "
        "stopped, so this is the gap of a model that had not converged"
    )


def cka_precondition(cmp: Comparison, cka: bool) -> str:
    """Why the CKA is not measured before looking at checkpoints ("" when it may be).

    Args:
        cmp: the comparison.
        cka: False when the CKA was switched off (``--no-cka``).

    Returns:
        The reason in words, or "".
    """
    why = cmp.why_not or ("" if cmp.pair else "no seed run by both configurations")
    if not why and not cka:
        why = "CKA skipped (--no-cka)"
    return why


@dataclass(frozen=True)
class CkaMeasurement:
    """What the report measured for the CKA criteria."""

    # run_cka's record (with ``seed_floor`` and ``within`` added), None when not measured
    result: dict[str, Any] | None
    # the seed-to-seed floor's values per stage ({} when it could not be computed)
    floor: dict[str, list[float]] = field(default_factory=dict)
    # why the CKA was not measured ("" when it was)
    why: str = ""
    # the heatmap of the two models' CKA, when one was drawn
    heatmap: Path | None = None


def _cka_criterion(
    stage: str, bounds: tuple[float, float], measured: CkaMeasurement, seed: int | None
) -> Criterion:
    """Returns the CKA criterion of one stage (see :func:`cka_verdict`)."""
    lo, hi = bounds
    name = f"CKA {stage}"
    target = f"{lo:g}–{hi:g}, below the seed-to-seed floor"
    result = measured.result
    if result is None:
        return Criterion(name, target, "—", None, measured.why)
    if stage not in result["linear_debiased_diagonal"]:
        return Criterion(name, target, "—", None, f"no {stage} stage in both models")
    value = result["linear_debiased_diagonal"][stage]
    if value is None:
        why = f"CKA is undefined: {stage} is constant in one model over {result['n']} crystals"
        return Criterion(name, target, "—", None, why)
    values = measured.floor.get(stage, [])
    text = (
        f"{value:.3f} (debiased; biased {result['linear_diagonal'][stage]:.3f}; test split, "
        f"n = {result['n']}, seed {seed}); seed-to-seed "
        + (_floor_text(values) if values else "— (no seed pair)")
    )
    met, why = cka_verdict(value, values, lo, hi)
    return Criterion(name, target, text, met, why)


@dataclass(frozen=True)
class CriteriaResult:
    """The plan's criteria with what they read."""

    criteria: list[Criterion]
    measured: CkaMeasurement
    comparison: Comparison

    def records(self) -> list[dict[str, Any]]:
        """Returns the criteria as ``report.json``'s ``criteria`` holds them."""
        return [c.record() for c in self.criteria]


def evaluate_criteria(
    cmp: Comparison, threshold: float, measured: CkaMeasurement
) -> CriteriaResult:
    """The plan's criteria for the comparison (see the module docstring).

    Args:
        cmp: the best configuration against the original baseline.
        threshold: the relative change of validation MAE that counts.
        measured: the CKA the report measured for the pair of ``cmp``.

    Returns:
        Validation MAE, gap ratio, and one CKA criterion per stage of :data:`CKA_TARGETS`.
    """
    seed = cmp.pair[0].seed if cmp.pair else None
    rows = [validation_criterion(cmp, threshold), gap_criterion(cmp)]
    rows += [_cka_criterion(stage, b, measured, seed) for stage, b in CKA_TARGETS.items()]
    return CriteriaResult(rows, measured, cmp)
