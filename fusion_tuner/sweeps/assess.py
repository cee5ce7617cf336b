"""A sweep's runs through the sequential decision procedure (:mod:`fusion_tuner.sweeps.sequential`):
per experiment its decision, why it stopped taking seeds, its intervals and advice, and which
seeds the next round runs. Used by the summary and by the rounds sweeper
(``hydra_plugins/fusion_tuner_rounds``), so both read the same state from the run directories:
a rerun into the sweep directory replays the looks from the runs that exist and continues where
the sweep stopped.

Before the statistics, per run and per arm:

* **failed** runs, and planned runs that have not finished (missing, interrupted, still running),
  remove their own seed pair only (the summary lists them; a rerun into the sweep directory
  completes them and the looks are replayed with their results);
* **stalled** runs are flagged and their pair is left out of the interval (reported, never
  silently used to set the spread): best epoch ≤ :data:`STALL_BEST_FRACTION` (40 %) of the epochs
  it ran **and** validation MAE > :data:`STALL_FACTOR` (1.3) × the median of its arm's completed
  runs;
* an arm whose runs **learned nothing** (median validation skill against the training-mean
  predictor below :data:`fusion_tuner.metrics.MIN_SKILL`) is not compared: its decision says so,
  and no seeds are added to it; when the baseline learned nothing, no experiment is compared.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.metrics import MIN_SKILL
from fusion_tuner.rundir import COMPLETED, Run
from fusion_tuner.sweeps.plan import PLAN_FILE
from fusion_tuner.sweeps.sequential import (
    DOWN,
    SAME,
    SPENDING,
    UP,
    ArmStats,
    Design,
    PhaseResult,
    arm_stats,
    nominal_levels,
    run_phase,
    seeds_for_branch,
)

STALL_BEST_FRACTION = 0.4
STALL_FACTOR = 1.3
# stop reasons
DECIDED, CAP, NOTHING_LEARNED, WAITING, WAITING_OTHERS, TOO_FEW = (
    "decided",
    "cap reached",
    "learned nothing",
    "waiting for seeds",
    "waiting for the other experiments' seeds",
    "too few seed pairs",
)
VERDICTS = {DOWN: "down", UP: "up", SAME: "unchanged"}


@dataclass
class ArmResult:
    """One experiment against the baseline (see the module docstring)."""

    verdict: str  # "down" | "up" | "unchanged" | "open" | "learned nothing"
    stop: str  # DECIDED | CAP | NOTHING_LEARNED | WAITING | TOO_FEW
    seeds_run: list[int]
    stats: ArmStats
    # Holm's number of arms at the last test and the nominal two-sided level it used
    holm_m: int
    stalled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # median validation skill of the arm's completed runs (None: not recorded)
    skill: float | None = None
    # the same for the baseline
    baseline_skill: float | None = None
    # the branch in reach at the observed change and spread and its seeds per arm
    branch: str = ""
    branch_seeds: int | None = None
    # seeds the next round runs for this arm ([] when it takes none)
    next_seeds: list[int] = field(default_factory=list)
    # the fewest pairs a decision is taken on (the design's first look)
    min_pairs: int = 2


@dataclass
class Assessment:
    design: Design
    design_source: str
    arms: dict[str, ArmResult]
    baseline_skill: float | None
    baseline_stalled: list[str]
    baseline_failed: list[str]
    # seeds in order (the grid's, then the ones rounds add)
    seed_order: list[int]
    looks_done: int
    # per experiment (baseline included when anything is open) the seeds the next round runs
    next_round: dict[str, list[int]]
    tau: float
    margin: float

    @property
    def spending(self) -> str:
        return SPENDING if len(self.design.looks) > 1 else "none (one look: a fixed design)"


def design_of(sweep_dir: Path, runs: list[Run]) -> tuple[Design, str]:
    """The design a sweep ran under: the sweep plan's record (written by the rounds sweeper),
    else the runs' ``sweep`` config node, else the defaults."""
    plan = Path(sweep_dir) / PLAN_FILE
    if plan.is_file():
        try:
            rec = json.loads(plan.read_text()).get("design")
        except (OSError, ValueError):
            rec = None
        if rec:
            return Design(**rec), "sweep_plan.json"
    for r in runs:
        node = (r.settings or {}).get("sweep") if r.settings else None
        if node:
            keys = {f for f in Design.__dataclass_fields__ if f in node and f != "threshold"}
            return Design(**{k: node[k] for k in keys}), "the runs' sweep.* config"
    return Design(), "the defaults"


def stalled_runs(runs: list[Run]) -> list[Run]:
    """The arm's stalled runs (rule in the module docstring)."""
    done = [r for r in runs if r.status == COMPLETED and r.val_mae is not None]
    if len(done) < 2:
        return []
    median = statistics.median(r.val_mae for r in done)  # type: ignore[misc]
    out = []
    for r in done:
        best, ran = r.metrics.get("best_epoch"), r.metrics.get("epochs_run")
        if best is None or not ran:
            continue
        if best <= STALL_BEST_FRACTION * ran and r.val_mae > STALL_FACTOR * median:  # type: ignore[operator]
            out.append(r)
    return out


def median_skill(runs: list[Run]) -> float | None:
    vals = [r.result("val", "skill") for r in runs]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return float(statistics.median(vals)) if vals else None


def _learned_nothing(skill: float | None) -> bool:
    return skill is not None and skill < MIN_SKILL


def _seed_order(groups: dict[str, list[Run]], design: Design) -> list[int]:
    """Returns the seeds in order: those the runs have, then the next ones up to the cap."""
    order = sorted({r.seed for g in groups.values() for r in g if r.seed is not None})
    while len(order) < design.max_seeds:
        order.append((order[-1] + 1) if order else 1)
    return order


def _runs_by_seed(runs: list[Run]) -> dict[int, Run]:
    """Returns the runs that have a seed, by seed."""
    return {r.seed: r for r in runs if r.seed is not None}


def _pair_differences(
    runs: dict[int, Run],
    base: dict[int, Run],
    stalled: set[str],
    base_stalled: set[str],
    order: list[int],
) -> tuple[np.ndarray, int]:
    """Per seed of ``order``, the experiment's validation MAE minus the baseline's.

    Returns:
        The differences (NaN where either run failed, has not finished or stalled) and how
        many leading seeds of ``order`` both arms have run (failed or not).
    """
    d = np.full(len(order), np.nan)
    n_avail = 0
    counting = True
    for j, seed in enumerate(order):
        a, b = runs.get(seed), base.get(seed)
        # run, failed, or planned and not finished (its pair is left out until it is)
        done = a is not None and b is not None
        if counting and done:
            n_avail = j + 1
        else:
            counting = False
        if (
            a is not None
            and b is not None
            and a.val_mae is not None
            and b.val_mae is not None
            and a.name not in stalled
            and b.name not in base_stalled
        ):
            d[j] = a.val_mae - b.val_mae
    return d, n_avail


@dataclass
class _Arms:
    """Every experiment's :class:`ArmResult` before the procedure, and for the arms it tests
    (those whose runs and the baseline's learned something) their differences and seeds run."""

    results: dict[str, ArmResult] = field(default_factory=dict)
    tested: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    available: list[int] = field(default_factory=list)


def _start_arms(
    groups: dict[str, list[Run]],
    base: dict[int, Run],
    base_stalled: set[str],
    base_skill: float | None,
    order: list[int],
) -> _Arms:
    """Returns each experiment's arm as it stands before the procedure: open and waiting (at
    the raw 95% level), or not compared when its runs or the baseline's learned nothing."""
    arms = _Arms()
    for e in (e for e in groups if e != "baseline"):
        runs = _runs_by_seed(groups[e])
        stalled = {r.name for r in stalled_runs(groups[e])}
        skill = median_skill(groups[e])
        d, n_avail = _pair_differences(runs, base, stalled, base_stalled, order)
        failed = [r.name for r in groups[e] if r.status not in (COMPLETED,)]
        arms.results[e] = ArmResult(
            "open",
            WAITING,
            [x for x in order if x in runs],
            arm_stats(d[:n_avail], 0.05, 0.05),
            0,
            sorted(stalled),
            failed,
            skill,
            base_skill,
        )
        if _learned_nothing(base_skill) or _learned_nothing(skill):
            arms.results[e].verdict, arms.results[e].stop = "learned nothing", NOTHING_LEARNED
            continue
        arms.tested.append(e)
        arms.rows.append(d)
        arms.available.append(n_avail)
    return arms


@dataclass(frozen=True)
class _Phase:
    """The procedure's outcome over a sweep's tested arms, with what settling an arm reads."""

    result: PhaseResult
    # nominal_levels(design, number of tested arms)
    nominal: np.ndarray
    design: Design
    order: list[int]
    tau: float
    margin: float

    @property
    def looks_done(self) -> int:
        """The looks the sweep has reached."""
        return int(self.result.looks_done[0])


def _settle_arm(arm: ArmResult, i: int, diffs: np.ndarray, avail: int, phase: _Phase) -> None:
    """Set the ``i``-th tested arm's verdict, stop reason, intervals at the level it was last
    tested at, next seeds and (when open) the branch in reach, from the procedure's outcome."""
    res, nom = phase.result, phase.nominal
    v = int(res.verdict[0, i])
    li, m = int(res.last_look[0, i]), int(res.holm_m[0, i])
    n_seeds = int(res.seeds[0, i])
    level, eq = float(nom[li, m]), float(nom[li, 1])
    fam = phase.design.family_alpha / m
    arm.stats = arm_stats(diffs[:n_seeds] if n_seeds else diffs[:0], level, eq, fam)
    arm.holm_m = m
    if v in VERDICTS:
        arm.verdict, arm.stop = VERDICTS[v], DECIDED
    elif bool(res.open[0, i]):
        # the phase waits at its next look: report the pairs there are so far, at the level of
        # that look
        looks_done = phase.looks_done
        want = phase.design.looks[looks_done]
        have = min(avail, want)
        arm.next_seeds = phase.order[avail:want]
        arm.verdict = "open"
        arm.stop = WAITING if arm.next_seeds else WAITING_OTHERS
        level, eq = float(nom[looks_done, m]), float(nom[looks_done, 1])
        arm.stats = arm_stats(diffs[:have], level, eq, fam)
    else:
        arm.verdict = "open"
        arm.min_pairs = phase.design.min_pairs
        arm.stop = CAP if arm.stats.n >= arm.min_pairs else TOO_FEW
    if arm.verdict == "open":  # at the last look's levels: the seeds, approximately
        arm.branch, arm.branch_seeds = seeds_for_branch(
            arm.stats.delta,
            arm.stats.sd,
            tau=phase.tau,
            margin=phase.margin,
            level=float(nom[-1, m]),
            eq_level=float(nom[-1, 1]),
        )


def _next_round(arms: _Arms, base: dict[int, Run]) -> dict[str, list[int]]:
    """Returns per experiment the seeds the next round runs, and the baseline's that are
    missing for them ({} when no arm waits for seeds)."""
    results = arms.results
    next_round: dict[str, list[int]] = {}
    open_seeds = sorted({x for e in arms.tested for x in results[e].next_seeds})
    if open_seeds:
        for e in arms.tested:
            if results[e].next_seeds:
                next_round[e] = results[e].next_seeds
        need = [x for x in open_seeds if x not in base]
        if need:
            next_round["baseline"] = need
    return next_round


def assess(
    groups: dict[str, list[Run]], design: Design, threshold: float, source: str = ""
) -> Assessment | None:
    """Run the procedure over a sweep's runs grouped by experiment.

    Args:
        groups: the selecting runs per experiment (the baseline's under ``baseline``).
        design: the sequential design (its threshold is replaced by ``threshold``).
        threshold: τ as a fraction of the baseline's mean validation MAE.
        source: where ``design`` came from, in words.

    Returns:
        The assessment, or None without a baseline.
    """
    if "baseline" not in groups:
        return None
    design = Design(**(asdict(design) | {"threshold": threshold}))
    base_runs = groups["baseline"]
    order = _seed_order(groups, design)
    base = _runs_by_seed(base_runs)
    base_stalled = {r.name for r in stalled_runs(base_runs)}
    base_done = [r for r in base_runs if r.status == COMPLETED and r.val_mae is not None]
    base_mean = statistics.fmean(r.val_mae for r in base_done) if base_done else math.nan  # type: ignore[misc]
    base_skill = median_skill(base_runs)
    arms = _start_arms(groups, base, base_stalled, base_skill, order)
    looks_done = 0
    next_round: dict[str, list[int]] = {}
    tau = design.threshold * abs(base_mean) if math.isfinite(base_mean) else math.nan
    margin = design.equivalence_margin * abs(base_mean) if math.isfinite(base_mean) else math.nan
    if arms.tested and math.isfinite(base_mean):
        nom = nominal_levels(design, len(arms.tested))
        res = run_phase(
            np.array(arms.rows)[None],
            base_mean,
            design,
            available=np.array([arms.available]),
            nominal=nom,
        )
        phase = _Phase(res, nom, design, order, tau, margin)
        looks_done = phase.looks_done
        for i, e in enumerate(arms.tested):
            _settle_arm(arms.results[e], i, arms.rows[i], arms.available[i], phase)
        next_round = _next_round(arms, base)
    return Assessment(
        design,
        source,
        arms.results,
        base_skill,
        sorted(base_stalled),
        [r.name for r in base_runs if r.status != COMPLETED],
        order,
        looks_done,
        next_round,
        tau,
        margin,
    )


def arm_record(a: ArmResult, base_mean: float) -> dict[str, Any]:
    """One arm's part of ``summary.json``."""

    def num(x: float) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    def pair(p: tuple[float, float]) -> list[float | None] | None:
        return None if not math.isfinite(p[0]) else [num(p[0]), num(p[1])]

    def pct(p: tuple[float, float]) -> list[float | None] | None:
        if not math.isfinite(p[0]) or not base_mean:
            return None
        return [num(100 * p[0] / base_mean), num(100 * p[1] / base_mean)]

    st = a.stats
    return {
        "verdict": a.verdict,
        "stop_reason": a.stop,
        "seeds_run": a.seeds_run,
        "pairs_used": st.n,
        "raw_interval": pair(st.raw),
        "raw_interval_pct": pct(st.raw),
        "adjusted_interval": pair(st.adjusted),
        "adjusted_interval_pct": pct(st.adjusted),
        "adjusted_level": num(st.adjusted_level),
        "holm_m": a.holm_m,
        "equivalence_interval": pair(st.equivalence),
        "equivalence_interval_pct": pct(st.equivalence),
        "equivalence_level": num(1 - 2 * st.equivalence_level),
        "mde": num(st.mde),
        "mde_pct": num(100 * st.mde / base_mean) if base_mean else None,
        "sd_per_seed_difference": num(st.sd),
        "branch_in_reach": a.branch or None,
        "seeds_for_branch": a.branch_seeds,
        "stalled_runs": a.stalled,
        "failed_runs": a.failed,
        "skill": num(a.skill) if a.skill is not None else None,
        "next_seeds": a.next_seeds,
    }


# Seeds from here on are confirmation seeds: the winner and the baseline re-run on fresh seeds,
# never used in selection (the rounds never reach them).
CONFIRM_SEED_BASE = 1001


def is_confirmation(run: Run) -> bool:
    return run.seed is not None and run.seed >= CONFIRM_SEED_BASE


@dataclass
class Confirmation:
    """The winner against the baseline on the confirmation seeds (paired 95% t interval)."""

    experiment: str
    seeds: list[int]
    pairs: int
    delta: float
    low: float
    high: float
    # "confirmed" | "not confirmed" | "pending" (fewer than 2 completed pairs) |
    # "not run" (sweep.confirm_seeds = 0 or a sweeper that cannot run it)
    status: str

    @property
    def confirmed(self) -> bool:
        return self.status == "confirmed"


def confirm_seeds_of(sweep_dir: Path, runs: list[Run]) -> int:
    """``sweep.confirm_seeds`` of a sweep (its plan's record, else its runs' config, else 3)."""
    plan = Path(sweep_dir) / PLAN_FILE
    if plan.is_file():
        try:
            rec = json.loads(plan.read_text())
        except (OSError, ValueError):
            rec = {}
        if rec.get("confirm_seeds") is not None:
            return int(rec["confirm_seeds"])
    for r in runs:
        node = (r.settings or {}).get("sweep") if r.settings else None
        if node and node.get("confirm_seeds") is not None:
            return int(node["confirm_seeds"])
    return 3


def confirmation(winner: str, confirm_runs: list[Run], wanted: int) -> Confirmation:
    """The confirmation of ``winner`` from the sweep's confirmation runs (seeds ≥ 1001)."""
    mine = {r.seed: r for r in confirm_runs if r.experiment == winner}
    base = {r.seed: r for r in confirm_runs if r.experiment == "baseline"}
    seeds = sorted(set(mine) & set(base))
    d = np.array(
        [
            mine[s].val_mae - base[s].val_mae  # type: ignore[operator]
            for s in seeds
            if mine[s].val_mae is not None and base[s].val_mae is not None
        ]
    )
    if wanted == 0 and not len(d):
        return Confirmation(winner, [], 0, math.nan, math.nan, math.nan, "not run")
    st = arm_stats(d, 0.05, 0.05)
    if st.n < 2:
        return Confirmation(winner, seeds, st.n, st.delta, math.nan, math.nan, "pending")
    ok = st.raw[1] < 0
    return Confirmation(
        winner, seeds, st.n, st.delta, st.raw[0], st.raw[1], "confirmed" if ok else "not confirmed"
    )
