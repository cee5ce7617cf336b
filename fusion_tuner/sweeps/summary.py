"""The sweep summary: one row per run of a multirun, the plan's decision per experiment, the
winner the next phase starts from, and the phase's verdict. Reads run directories only (through
:class:`fusion_tuner.rundir.Run`) plus the sweep's plan, so runs that failed or never started are
listed, never dropped.

The decisions come from the sequential, family-wise procedure of
:mod:`fusion_tuner.sweeps.sequential` applied to the run directories by
:mod:`fusion_tuner.sweeps.assess` (validation MAE paired by seed; Holm over the experiments;
O'Brien–Fleming-type spending over the looks; TOST for ⚠️ unchanged; stalled runs flagged and
left out; experiments whose runs learned nothing not compared). Beside each decision the summary
puts the test-MAE change and flags experiments whose validation and test changes disagree in
sign (validation MAE also picked the best epoch, so it flatters runs with more epochs or
patience; those are noted too). Confirmation runs (seeds ≥ 1001) never enter the selection.

The winner is the ✅ down experiment with the lowest mean validation MAE; ``next_base`` is what
a chained phase starts from (see :mod:`fusion_tuner.sweeps.chain`): the winner only once its
confirmation on fresh seeds holds (or ``sweep.confirm_seeds=0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner.config import flatten, is_result_neutral
from fusion_tuner.decision import (
    CONFIDENCE,
    DOWN,
    INCONCLUSIVE,
    LEARNED_NOTHING,
    NEXT_STEP,
    NONE,
    REFERENCE,
    SAME,
    UP,
    Decision,
    decide,
    mean_sd,
)
from fusion_tuner.markdown import fmt
from fusion_tuner.metrics import MIN_SKILL, learned_nothing
from fusion_tuner.rundir import COMPLETED, REFUSED, Run, RunDir
from fusion_tuner.sweeps.assess import (
    TOO_FEW,
    ArmResult,
    Assessment,
    Confirmation,
    assess,
    confirm_seeds_of,
    confirmation,
    design_of,
    is_confirmation,
)
from fusion_tuner.sweeps.chain import NextBase, as_overrides
from fusion_tuner.sweeps.context import Context, build_context
from fusion_tuner.sweeps.plan import job_experiment, read_plan

__all__ = [
    "COLUMNS",
    "DOWN",
    "INCONCLUSIVE",
    "NEXT_STEP",
    "NONE",
    "SAME",
    "UP",
    "ArmReference",
    "Decision",
    "Summary",
    "decide",
    "mean_std",
    "summarize",
]

mean_std = mean_sd
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
    "val_mean_mae",
    "test_mean_mae",
    "val_r2",
    "test_r2",
    "val_skill",
    "test_skill",
    "gap_ratio",
    "delta_val_mae",
    "delta_val_mae_pct",
    "delta_test_mae",
    "decision",
    "flags",
    "error",
    "run_dir",
)


def load_runs(sweep_dir: Path) -> list[Run]:
    """Every run directory of the sweep, and every planned job that has none (``missing``).

    A run whose last attempt was refused (its directory holds a run of another config, or was
    owned by another live process) is ``refused``: its files are not this sweep's result.
    """
    runs = [
        Run(d)
        for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if RunDir(d).is_run()
    ]
    found = [_job_key(r.overrides) for r in runs]
    for r in runs:
        refusal = r.files.read_refusal() if r.files else None
        if refusal is not None:
            r.live_status, r.refused = REFUSED, str(refusal.get("reason") or "refused")
            found.append(_job_key(refusal.get("overrides") or []))
    for job in read_plan(sweep_dir) or []:
        if _job_key(job) not in found:
            runs.append(Run.missing(job_experiment(job), job))
    return runs


def _job_key(overrides: list[str]) -> list[str]:
    """A job's overrides without the result-neutral ones, sorted: what a planned job and the run
    that carried it out must share. A rerun may change how the sweep decides (``sweep.*``) or
    logs; the completed runs it skips keep the overrides they ran with."""
    return sorted(o for o in overrides if not is_result_neutral(o.split("=", 1)[0].lstrip("+~")))


def _experiment_order(runs: list[Run]) -> list[str]:
    order: list[str] = []
    for r in runs:
        if r.experiment not in order:
            order.append(r.experiment)
    if "baseline" in order:
        order.remove("baseline")
        order.insert(0, "baseline")
    return order


def _diff(run: Run, reference: dict[str, Any]) -> dict[str, Any]:
    """Every result-affecting setting in which ``run`` differs from ``reference`` (the
    baseline's flattened config), as ``{dotted key: value}``."""
    return {
        k: v
        for k, v in sorted(flatten(run.settings).items())
        if k not in OWN_COLUMNS and not is_result_neutral(k) and reference.get(k, v) != v
    }


def _distinguishing(run: Run, reference: dict[str, Any]) -> str:
    """``key=value; ...`` of :func:`_diff`."""
    return "; ".join(f"{k}={v}" for k, v in _diff(run, reference).items())


@dataclass(frozen=True)
class ArmReference:
    """An experiment's completed selecting runs beside the training-mean predictor: mean MAE of
    the runs and of the mean predictor on validation and test, median skill and R²."""

    experiment: str
    seeds: int
    val_mae: float | None
    val_mean_mae: float | None
    test_mae: float | None
    test_mean_mae: float | None
    val_skill: float | None
    test_skill: float | None
    val_r2: float | None
    test_r2: float | None
    # the median validation skill is below MIN_SKILL: no better than predicting the mean
    learned_nothing: bool


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def arm_reference(experiment: str, runs: list[Run]) -> ArmReference:
    """The :class:`ArmReference` of ``runs`` (the completed ones count)."""
    done = [r for r in runs if r.status == COMPLETED]

    def mean(split: str, key: str) -> float | None:
        vals = _finite([r.result(split, key) for r in done])
        return mean_sd(vals)[0] if vals else None

    def median(split: str, key: str) -> float | None:
        vals = sorted(_finite([r.result(split, key) for r in done]))
        if not vals:
            return None
        mid = len(vals) // 2
        return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2

    val_skill = median("val", "skill")
    return ArmReference(
        experiment,
        len(done),
        mean("val", "mae"),
        mean("val", "mean_predictor_mae"),
        mean("test", "mae"),
        mean("test", "mean_predictor_mae"),
        val_skill,
        median("test", "skill"),
        median("val", "r2"),
        median("test", "r2"),
        learned_nothing(val_skill),
    )


@dataclass
class Summary:
    """A sweep's summary (what ``summary.csv/.md/.json`` hold)."""

    rows: list[dict[str, Any]]
    decisions: dict[str, Decision]
    verdict: str
    threshold: float
    # SLURM's view of unfinished runs (fusion_tuner.slurm.record), "" when there is none
    slurm_note: str = ""
    confidence: float = CONFIDENCE
    # where the sweep started (a chained sweep): {"sweep", "winner", "overrides", "superseded"}
    base: dict[str, Any] | None = None
    # the ✅ down experiment with the lowest mean validation MAE, or None
    winner: str | None = None
    # what the next phase starts from
    next_base: NextBase | None = None
    # the sequential procedure's view of the sweep (None without a baseline)
    assessment: Assessment | None = None
    # the winner re-run with the baseline on fresh seeds (None without a winner)
    confirmation: Confirmation | None = None
    # run directory names per experiment
    run_dirs: dict[str, list[str]] = field(default_factory=dict)
    # data, target, budget, crystals, steps, seeds, wall time and code of the runs
    context: Context | None = None
    # each experiment beside the training-mean predictor
    references: dict[str, ArmReference] = field(default_factory=dict)

    @property
    def tau(self) -> float | None:
        """τ: the threshold in validation-MAE units (None without a baseline result)."""
        d = next((d for d in self.decisions.values() if d.decision not in (REFERENCE, NONE)), None)
        return d.margin if d is not None and math.isfinite(d.margin) else None


def _reference(runs: list[Run], base_runs: list[Run]) -> dict[str, Any]:
    """The flattened config runs are compared with: the baseline's, else what all runs share."""
    reference = flatten(next((r.settings for r in base_runs if r.settings), {}))
    if not reference:
        flat = [flatten(r.settings) for r in runs if r.settings]
        reference = (
            {k: v for k, v in flat[0].items() if all(f.get(k) == v for f in flat)} if flat else {}
        )
    return reference


def _row(
    run: Run,
    reference: dict[str, Any],
    ref: tuple[float | None, float | None],
    decision: str,
    stalled: bool = False,
    confirming: bool = False,
) -> dict:
    # a refused run's files are another config's; an unreadable run's cannot be trusted
    m = {} if run.refused or run.unreadable else run.metrics
    ref_val, ref_test = ref
    delta = run.val_mae - ref_val if run.val_mae is not None and ref_val is not None else None
    test = run.result("test")
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
    skill = run.result("val", "skill")
    if run.status == COMPLETED and learned_nothing(skill):
        flags.append(f"learned nothing (validation skill {skill:.2f} against the mean predictor)")
    if stalled:
        flags.append("stalled (left out of the interval)")
    if confirming:
        flags.append("confirmation run (not used in selection)")
    error = str(run.refused or run.unreadable or m.get("error") or "").strip()
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
        "test_mae": test,
        "val_mean_mae": run.result("val", "mean_predictor_mae"),
        "test_mean_mae": run.result("test", "mean_predictor_mae"),
        "val_r2": run.result("val", "r2"),
        "test_r2": run.result("test", "r2"),
        "val_skill": skill,
        "test_skill": run.result("test", "skill"),
        "gap_ratio": m.get("gap_ratio"),
        "delta_val_mae": delta,
        "delta_val_mae_pct": 100 * delta / ref_val if delta is not None and ref_val else None,
        "delta_test_mae": test - ref_test if test is not None and ref_test is not None else None,
        "decision": decision,
        "flags": "; ".join(flags),
        "error": error.splitlines()[-1] if error else "",
        "run_dir": run.name,
    }


def _by_seed(runs: list[Run], split: str = "val") -> dict[int, float] | list[float]:
    """Completed results by seed (a plain list when seeds are missing or repeat)."""
    done = [(r.seed, r.result(split)) for r in runs if r.result(split) is not None]
    seeds = [s for s, _ in done]
    if None in seeds or len(set(seeds)) != len(seeds):
        return [v for _, v in done]  # type: ignore[misc]
    return {s: v for s, v in done}  # type: ignore[misc]


def _values(arm: dict[int, float] | list[float]) -> list[float]:
    return list(arm.values()) if isinstance(arm, dict) else list(arm)


def _paired_diffs(arm: dict | list, base: dict | list) -> list[float]:
    if not isinstance(arm, dict) or not isinstance(base, dict):
        return []
    return [arm[k] - base[k] for k in sorted(set(arm) & set(base))]


def _epochs_note(runs: list[Run], base_runs: list[Run]) -> str:
    """A caveat when the experiment may train longer or with more patience than the baseline."""
    notes = []
    for key, what in (("max_epochs", "epochs"), ("n_early_stopping", "patience")):
        mine = {r.metrics.get(key) for r in runs if r.metrics.get(key) is not None}
        theirs = {r.metrics.get(key) for r in base_runs if r.metrics.get(key) is not None}
        if mine and theirs and max(mine) > max(theirs):
            notes.append(f"{what} {max(mine)} vs the baseline's {max(theirs)}")
    if not notes:
        return ""
    return (
        f"trains with more {' and '.join(n.split()[0] for n in notes)} ({'; '.join(notes)}): "
        "validation MAE also chose the best epoch, so it favours this run; check the test change"
    )


def _sign_disagrees(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a * b < 0


def _baseline_means(base_runs: list[Run]) -> tuple[list[float], float | None]:
    """Returns the baseline's validation MAEs and its mean test MAE (None without one)."""
    tests = _values(_by_seed(base_runs, "test"))
    return _values(_by_seed(base_runs)), mean_sd(tests)[0] if tests else None


def _decisions(
    order: list[str], groups: dict[str, list[Run]], assessment: Assessment | None
) -> dict[str, Decision]:
    """Each experiment's decision against the baseline (the baseline's is the reference).

    Returns:
        Decisions in ``order``, with the test-MAE change, whether validation and test disagree
        in sign, and the caveats (see :func:`_decision` and :func:`_epochs_note`).
    """
    base_runs = groups.get("baseline", [])
    arms = {e: _by_seed(g) for e, g in groups.items()}
    tests = {e: _values(_by_seed(g, "test")) for e, g in groups.items()}
    base_arm = arms.get("baseline", [])
    base_test = _baseline_means(base_runs)[1]
    decisions: dict[str, Decision] = {}
    for exp in order:
        n = len(_values(arms[exp]))
        if exp == "baseline":
            decisions[exp] = Decision(REFERENCE, 0.0, 0.0, n, n)
            continue
        d = _decision(arms[exp], base_arm, assessment.arms.get(exp) if assessment else None)
        if assessment is not None:
            d = d._replace(margin=assessment.tau)
        test_delta = (
            mean_sd(tests[exp])[0] - base_test if tests[exp] and base_test is not None else None
        )
        decisions[exp] = d._replace(
            test_delta=test_delta,
            disagrees=_sign_disagrees(d.delta if d.decision != NONE else None, test_delta),
            note="; ".join(filter(None, [d.note, _epochs_note(groups[exp], base_runs)])),
        )
    return decisions


def _rows(
    runs: list[Run],
    order: list[str],
    decisions: dict[str, Decision],
    reference: dict[str, Any],
    base_runs: list[Run],
    assessment: Assessment | None,
) -> list[dict]:
    """Returns the summary's rows (see :func:`_row`): by experiment in ``order``, then seed."""
    base_vals, base_test = _baseline_means(base_runs)
    base_by_seed = {r.seed: (r.val_mae, r.result("test")) for r in base_runs if r.val_mae}
    base_mean = (mean_sd(base_vals)[0], base_test) if base_vals else (None, None)
    ordered = sorted(
        runs, key=lambda r: (order.index(r.experiment), r.seed if r.seed is not None else -1)
    )
    stalled = {
        name for a in ([] if assessment is None else assessment.arms.values()) for name in a.stalled
    } | set(assessment.baseline_stalled if assessment else [])
    return [
        _row(
            r,
            reference,
            base_by_seed.get(r.seed, base_mean),
            decisions[r.experiment].decision,
            stalled=r.name in stalled,
            confirming=is_confirmation(r),
        )
        for r in ordered
    ]


def summarize(sweep_dir: Path, threshold: float = 0.02) -> Summary:
    """Build the summary of ``sweep_dir`` (see the module docstring).

    Returns:
        The summary: rows, decisions, winner, confirmation, next base and verdict.
    """
    from fusion_tuner.slurm.record import annotate_runs

    runs = load_runs(sweep_dir)
    slurm_note = annotate_runs(sweep_dir, runs)  # live SLURM state of unfinished runs, if any
    order = _experiment_order(runs)
    # the confirmation runs (seeds >= 1001) never take part in selection
    confirm_runs = [r for r in runs if is_confirmation(r)]
    groups = {e: [r for r in runs if r.experiment == e and not is_confirmation(r)] for e in order}
    base_runs = groups.get("baseline", [])
    design, source = design_of(sweep_dir, runs)
    assessment = assess(groups, design, threshold, source)
    decisions = _decisions(order, groups, assessment)
    reference = _reference(runs, base_runs)
    rows = _rows(runs, order, decisions, reference, base_runs, assessment)
    base = _started_from(runs)
    down = {e: d for e, d in decisions.items() if d.decision == DOWN}
    winner = min(down, key=lambda e: down[e].delta) if down else None
    conf = (
        confirmation(winner, confirm_runs, confirm_seeds_of(sweep_dir, runs))
        if winner is not None
        else None
    )
    references = {e: arm_reference(e, g) for e, g in groups.items()}
    verdict = _verdict(
        sweep_dir,
        rows,
        decisions,
        _baseline_means(base_runs)[0],
        winner,
        assessment,
        conf,
        references.get("baseline"),
    )
    return Summary(
        rows,
        decisions,
        verdict,
        threshold,
        base=base,
        winner=winner,
        next_base=_next_base(sweep_dir, groups, winner, reference, base, conf),
        run_dirs={e: [r.name for r in g if r.files is not None] for e, g in groups.items()},
        slurm_note=slurm_note,
        assessment=assessment,
        confirmation=conf,
        context=build_context(runs),
        references=references,
    )


ARM_DECISION = {
    "down": DOWN,
    "up": UP,
    "unchanged": SAME,
    "open": INCONCLUSIVE,
    "learned nothing": LEARNED_NOTHING,
}


def _decision(
    arm: dict[int, float] | list[float], base: dict[int, float] | list[float], a: ArmResult | None
) -> Decision:
    """An experiment's decision: the sequential procedure's (``a``), with the raw 95% paired
    interval of the seed pairs it used."""
    ev, bv = _values(arm), _values(base)
    if not ev or not bv or a is None:
        return Decision(NONE, math.nan, math.nan, len(ev), len(bv))
    st = a.stats
    mb = mean_sd(bv)[0]
    delta = st.delta if st.n else mean_sd(ev)[0] - mb
    notes = []
    if a.stop == TOO_FEW:
        notes.append(_too_few(a))
    return Decision(
        ARM_DECISION[a.verdict],
        delta,
        math.nan,
        len(ev),
        len(bv),
        st.raw[0],
        st.raw[1],
        "paired t" if st.n >= 2 else "",
        note="; ".join(notes),
        base_mean=mb,
        arm=a,
    )


def _started_from(runs: list[Run]) -> dict[str, Any] | None:
    """The ``base`` record of a chained sweep (from its runs' configs), else None."""
    for r in runs:
        rec = r.settings.get("base") if r.settings else None
        if rec and rec.get("sweep"):
            return {
                "sweep": rec["sweep"],
                "winner": rec.get("winner"),
                "overrides": dict(rec.get("overrides") or {}),
            }
    return None


def _next_base(
    sweep_dir: Path,
    groups: dict[str, list[Run]],
    winner: str | None,
    reference: dict[str, Any],
    base: dict[str, Any] | None,
    conf: Confirmation | None = None,
) -> NextBase:
    start = dict(base["overrides"]) if base else {}
    where = str(Path(sweep_dir).resolve())
    kept = (
        f"the configuration it started from ({base['winner'] or 'kept'} of {base['sweep']})"
        if base
        else "the original baseline"
    )
    if winner is None:
        return NextBase(
            where, None, start, f"no ✅ winner in this sweep: the next phase keeps {kept}"
        )
    if conf is not None and not (conf.confirmed or conf.status == "not run"):
        why = {
            "pending": "its confirmation on fresh seeds has not run yet (rerun the sweep "
            "command into the sweep directory under the rounds sweeper, which the phases use, "
            "or add hydra/sweeper=rounds)",
            "not confirmed": "the baseline on fresh seeds did not confirm it (the 95% interval "
            f"of the change, [{fmt(conf.low)}, {fmt(conf.high)}], is not below 0)",
        }[conf.status]
        return NextBase(
            where,
            None,
            start,
            f"{winner} won the selection but is not confirmed: {why}; the next phase keeps {kept}",
        )
    run = next((r for r in groups[winner] if r.status == COMPLETED and r.settings), None)
    mine = _diff(run, reference) if run is not None else {}
    overrides = {**start, **mine}
    return NextBase(
        where,
        winner,
        overrides,
        f"{winner} won; as overrides of conf/'s baseline: {' '.join(as_overrides(overrides))}",
    )


def _too_few(a: ArmResult) -> str:
    """Why an arm at its cap with too few seed pairs was not decided, and the fix."""
    n = a.stats.n
    if n < 2:
        return "fewer than 2 seed pairs with the baseline give no interval"
    return (
        f"{n} seed pairs with the baseline, fewer than the {a.min_pairs} a decision needs in "
        "this design: no decision is taken on them (failed or missing runs took the others; "
        "rerun the sweep into its directory to complete them)"
    )


def arm_advice(d: Decision) -> str:
    """What an experiment's runs can say and what would settle it, in words ("" when decided)."""
    a: ArmResult | None = d.arm
    if a is None or d.decision in (DOWN, UP, SAME, REFERENCE, NONE):
        return ""
    if d.decision == LEARNED_NOTHING:
        who = [
            f"{name} (median validation skill {skill:.2f})"
            for name, skill in (("its runs", a.skill), ("the baseline's runs", a.baseline_skill))
            if learned_nothing(skill)
        ]
        return (
            f"{' and '.join(who)} do not beat the training-mean predictor (skill < "
            f"{MIN_SKILL:g}): more seeds cannot help; make the runs learn first (more epochs or "
            "data, check the learning rate)"
        )
    st = a.stats
    if a.stop == TOO_FEW or st.n < 2:
        return _too_few(a)
    parts = [f"detectable with 80% power at {st.n} pairs: ±{fmt(st.mde)} ({d.pct(st.mde):.1f}%)"]
    if a.next_seeds:
        parts.append(f"the next round adds seeds {', '.join(map(str, a.next_seeds))}")
    if a.branch:
        what = {"down": "✅ down", "up": "❌ up", "unchanged": "⚠️ unchanged"}[a.branch]
        parts.append(
            f"at the observed change and spread, {what} needs about {a.branch_seeds} seeds per arm"
            if a.branch_seeds
            else f"{what} is out of reach at this spread (over 1000 seeds per arm)"
        )
    else:
        parts.append("the change is about the threshold's size: neither branch is in reach")
    return "; ".join(parts)


def _open_advice(decisions: dict[str, Decision]) -> str:
    """Each open experiment's advice, in words."""
    return "; ".join(
        f"{e}: {arm_advice(d)}" for e, d in decisions.items() if d.decision == INCONCLUSIVE
    )


def _caveat(sweep_dir: Path, rows: list[dict]) -> str:
    """Returns the verdict's tail for runs that failed, did not finish or were refused."""
    bad = [r for r in rows if r["status"] not in (COMPLETED, REFUSED)]
    refused = [r for r in rows if r["status"] == REFUSED]
    caveat = ""
    if bad:
        which = ", ".join(sorted({r["experiment"] for r in bad}))
        caveat = (
            f" {len(bad)} run(s) failed or did not finish ({which}): rerun the sweep into "
            f"{sweep_dir} (hydra.sweep.dir=...) to complete them."
        )
    if refused:
        which = ", ".join(sorted({r["run_dir"] for r in refused}))
        caveat += (
            f" {len(refused)} run(s) were refused ({which}): their directories hold runs of "
            "another config (or of another live process), which this summary does not count; "
            "give a changed sweep a new hydra.sweep.dir."
        )
    return caveat


def _winner_verdict(sweep_dir: Path, winner: str, d: Decision, conf: Confirmation | None) -> str:
    """Returns the verdict of a sweep with a ✅ winner: selected and waiting for its
    confirmation, not confirmed, or tuning works."""
    said = (
        f"{winner} lowered validation MAE by {-d.delta_pct:.1f}% against the "
        f"baseline (95% interval {d.pct(d.low):+.1f}% to {d.pct(d.high):+.1f}%)"
    )
    if conf is not None and conf.status == "pending":
        return (
            f"Selected: {said}; not confirmed yet: rerun the same sweep command into "
            f"hydra.sweep.dir={sweep_dir} to re-run it and the baseline on fresh seeds "
            "before chaining."
        )
    if conf is not None and conf.status == "not confirmed":
        return (
            f"Not confirmed: {said} in the selection, but fresh seeds did not confirm it (Δ "
            f"{fmt(conf.delta)}, 95% interval [{fmt(conf.low)}, {fmt(conf.high)}] over "
            f"{conf.pairs} pairs): the selection's gain may be the winner's curse; the next "
            "phase keeps the previous start."
        )
    tail = (
        f", confirmed on fresh seeds {', '.join(map(str, conf.seeds))}"
        if conf is not None and conf.confirmed
        else " (not confirmed on fresh seeds: sweep.confirm_seeds=0)"
    )
    return (
        f"Tuning works: {said}{tail}; next, continue fine-tuning around {winner} (chain the next phase "
        f"with base_sweep={sweep_dir})."
    )


def _nothing_words(names: list[str], base_ref: ArmReference | None) -> str:
    """Returns the verdict's sentences on experiments (and a baseline) that learned nothing
    ("" when none did)."""
    if not names:
        return ""
    baseline = ""
    if base_ref is not None and base_ref.learned_nothing and base_ref.val_skill is not None:
        baseline = (
            f" The baseline itself learned nothing (median validation skill "
            f"{base_ref.val_skill:.2f}; validation MAE {fmt(base_ref.val_mae)} against "
            f"{fmt(base_ref.val_mean_mae)} for predicting the training mean)."
        )
    return (
        f"{baseline} Learned nothing (runs no better than the training-mean predictor, so "
        f"not compared): {', '.join(names)}; make the runs learn first (more "
        "epochs or data, check the learning rate) before comparing."
    )


def _follow_up(
    sweep_dir: Path,
    names: list[str],
    tried: dict[str, Decision],
    assessment: Assessment | None,
) -> str:
    """The step after the last look with experiments still open: a new test on fresh seeds.

    The design's level is spent at its last look, so more seeds in the same sweep would be a
    look the design never planned (a rerun with another ``sweep.max_seeds`` is refused); the
    open experiments are settled by a new sweep of them and the baseline on seeds this one did
    not use, run as a fixed design of as many seeds as the branch in reach needs.
    """
    arms = {e: d.arm for e in names if (d := tried.get(e)) is not None and d.arm is not None}
    short = [e for e, a in arms.items() if a.stop == TOO_FEW]
    names = [e for e in names if e not in short]
    if short and not names:
        return (
            f"complete the failed or missing runs of {', '.join(short)} first: rerun the same "
            f"command into hydra.sweep.dir={sweep_dir} (the last look is then taken on them)"
        )
    cap = assessment.design.max_seeds if assessment is not None else 0
    wanted = [a.branch_seeds for e, a in arms.items() if e in names and a.branch_seeds]
    head = (
        "the seed cap is reached and the design has spent its level at its last look (a rerun "
        "with another sweep.max_seeds is refused: it would re-plan looks already taken)"
    )
    if not wanted:
        return head + "; at the observed spread no number of seeds settles them"
    n = max(max(wanted), 2)
    exps = ",".join(["baseline", *names])
    return (
        f"{head}; to settle them, test them again on fresh seeds as a new sweep: rerun the "
        f"command with \"hydra.sweeper.params.experiment='{exps}'\" "
        f'"hydra.sweeper.params.random_seed=range({cap + 1},{cap + n + 1})" '
        f"hydra.sweep.dir={sweep_dir}-fresh ({n} seeds per arm, one look)"
    )


def _open_verdict(
    sweep_dir: Path,
    by: dict[str, list[str]],
    tried: dict[str, Decision],
    assessment: Assessment | None,
) -> str:
    """Returns the verdict of a sweep with open experiments: their advice and the next step,
    then the unchanged and up ones."""
    rest = "".join(
        f" {label}: {', '.join(by[k])}." for k, label in ((SAME, "Unchanged"), (UP, "Up")) if by[k]
    )
    verb = "is" if len(by[INCONCLUSIVE]) == 1 else "are"
    waiting = assessment is not None and bool(assessment.next_round)
    step = (
        "next, rerun the same sweep command into "
        f"hydra.sweep.dir={sweep_dir}: finished runs are skipped and the open experiments "
        "get their next round of seeds"
        if waiting
        else _follow_up(sweep_dir, by[INCONCLUSIVE], tried, assessment)
    )
    return (
        f"No clear winner: {', '.join(by[INCONCLUSIVE])} {verb} still open "
        f"({_open_advice(tried)}); {step}." + rest
    )


def _verdict(
    sweep_dir: Path,
    rows: list[dict],
    decisions: dict[str, Decision],
    base_vals: list[float],
    winner: str | None,
    assessment: Assessment | None = None,
    conf: Confirmation | None = None,
    base_ref: ArmReference | None = None,
) -> str:
    """Returns the sweep's verdict: what its decisions say and what to do next, with caveats
    for runs that failed, were refused or learned nothing."""
    caveat = _caveat(sweep_dir, rows)
    if not base_vals:
        return "No completed baseline run: no decision is possible." + caveat
    tried = {e: d for e, d in decisions.items() if e != "baseline" and d.decision != NONE}
    if not tried:
        return "No completed experiment besides the baseline: nothing to decide yet." + caveat
    if winner is not None:
        return _winner_verdict(sweep_dir, winner, tried[winner], conf) + caveat
    by = {
        k: [e for e, d in tried.items() if d.decision == k]
        for k in (SAME, UP, INCONCLUSIVE, LEARNED_NOTHING)
    }
    nothing = _nothing_words(by[LEARNED_NOTHING], base_ref)
    if by[INCONCLUSIVE]:
        return _open_verdict(sweep_dir, by, tried, assessment) + nothing + caveat
    if by[SAME]:
        return (
            "Validation MAE is unchanged by these settings: bigger changes are needed; next, try "
            "the phase 4 settings (python -m fusion_tuner +phase=4 -m)." + nothing + caveat
        )
    if by[UP]:
        return (
            "Every setting raised validation MAE (over-adjusted); next, back off to more "
            "conservative settings." + nothing + caveat
        )
    return "Nothing was compared." + nothing + caveat
