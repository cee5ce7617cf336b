"""The sweep's decision procedure over rounds of seeds: a group-sequential, family-wise design.

Pure statistics (numpy and scipy only, no project imports), vectorised over simulated phases so
that :mod:`bench.decision_oc` and the test suite can run thousands of phases in seconds, and
used for a real sweep with a batch of one.

**Looks.** Every arm (an experiment against the sweep's baseline, paired by seed) starts with
``initial_seeds`` seeds; each round adds ``seeds_per_round`` to the arms that are still open, up
to ``max_seeds``: the looks are at 3, 5, 7, 9, 10 seeds by default (:func:`looks`).
``max_seeds = initial_seeds`` is one look, a fixed design.

**Group-sequential boundary.** Looking after every round would inflate the error rate, so each
test spends its level ``a`` over the planned looks by the **Lan–DeMets O'Brien–Fleming-type
spending function** ``a(t) = 2 − 2 Φ(z(1 − a/2) / √t)`` at the information fractions
``t = n_look / max_seeds``; :func:`boundaries` turns the spending into z boundaries by the exact
recursive integration of Armitage, McPherson and Rowe, and each z boundary into a nominal
two-sided level ``p_look``. At a look the paired t test of the arm's per-seed differences
(df = pairs − 1) rejects "no change" when its two-sided p-value is at most ``p_look`` (the usual
nominal-level approximation for t statistics). With one look ``p_look = a``.

**Family-wise error (Holm).** The phase's ``K`` experiments share the family level ``α``
(``sweep.family_alpha``, 0.05) by Holm's step-down, run group-sequentially (Maurer & Bretz 2013,
the graphical approach with equal weights): an arm is tested at ``a = α / m`` with ``m`` the
arms not yet rejected; each rejection passes its level on to the others, which are then retested
at the same look with the larger ``a``. The **adjusted interval** of an arm is its t interval at
the nominal level it was last tested at; the **raw interval** is the plain 95 % t interval.

**Decisions** (on the change ``Δ`` = experiment − baseline, ``τ = threshold × baseline mean``,
``margin = equivalence_margin × baseline mean``):

* ✅ down / ❌ up: rejected by the procedure above **and** ``|Δ| > τ`` (the practical threshold);
* ⚠️ unchanged: the two one-sided tests (TOST) at the look's nominal level for ``α`` (not split
  by Holm) put the ``1 − 2 p_look`` interval within ``±margin`` (a 90 % interval at one look);
* ❓ open otherwise; an open arm gets more seeds until ``max_seeds`` (stop reason "cap reached").

An arm that is decided stops ("decided"); stopping for equivalence is non-binding, so it cannot
raise the error rate of ✅/❌. A pair whose experiment or baseline run failed (NaN) removes only
that pair, but **no decision is taken on fewer than** ``min(initial_seeds, 3)`` **pairs**
(:attr:`Design.min_pairs`): in a design of three or more seeds, two pairs whose differences
happen to agree give a t statistic on one degree of freedom that failed runs, not the design,
chose; such an arm stays open until the failed runs are rerun. A design of two seeds per arm
(the user's choice) decides on two. :func:`mde` and :func:`seeds_for_branch` give the advice: the smallest change the
seeds that ran detect with 80 % power, and the seeds per arm the branch within reach needs at
the observed change and spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

OPEN, DOWN, UP, SAME = 0, 1, 2, 3
SPENDING = "Lan-DeMets O'Brien-Fleming-type alpha spending"
POWER = 0.8


@dataclass(frozen=True)
class Design:
    """The sequential design's settings (the ``sweep.*`` keys of the same names)."""

    initial_seeds: int = 3
    seeds_per_round: int = 2
    max_seeds: int = 10
    family_alpha: float = 0.05
    # τ: a ✅/❌ change must exceed this fraction of the baseline's mean validation MAE
    threshold: float = 0.02
    # ⚠️ unchanged: the TOST interval lies within ± this fraction of the baseline's mean
    equivalence_margin: float = 0.05

    def __post_init__(self) -> None:
        if self.initial_seeds < 1:
            raise ValueError(f"initial_seeds must be at least 1, got {self.initial_seeds}")
        if self.seeds_per_round < 1:
            raise ValueError(f"seeds_per_round must be at least 1, got {self.seeds_per_round}")
        if self.max_seeds < self.initial_seeds:
            raise ValueError(
                f"max_seeds ({self.max_seeds}) must be at least initial_seeds "
                f"({self.initial_seeds})"
            )
        if not 0 < self.family_alpha < 0.5:
            raise ValueError(f"family_alpha must lie in (0, 0.5), got {self.family_alpha}")
        if self.threshold < 0 or self.equivalence_margin <= 0:
            raise ValueError("threshold must be >= 0 and equivalence_margin > 0")

    @property
    def looks(self) -> list[int]:
        return looks(self.initial_seeds, self.seeds_per_round, self.max_seeds)

    @property
    def min_pairs(self) -> int:
        """The fewest seed pairs a decision is taken on: the first look's seeds, at most 3
        (at least 2)."""
        return max(min(self.initial_seeds, 3), 2)


def looks(initial: int, per_round: int, cap: int) -> list[int]:
    """Seeds per arm at each look: ``initial``, then ``per_round`` more, never past ``cap``."""
    out = [min(initial, cap)]
    while out[-1] < cap:
        out.append(min(out[-1] + per_round, cap))
    return out


def spent(t: np.ndarray | float, alpha: float) -> np.ndarray:
    """Cumulative two-sided level spent at information fraction ``t`` (O'Brien–Fleming type)."""
    t = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))


def boundaries(fractions: list[float], alpha: float, grid: int = 801) -> np.ndarray:
    """Two-sided z boundaries ``c_k`` such that, with no change, the chance of first crossing
    ``|Z| ≥ c_k`` at look ``k`` is the level spent between looks ``k−1`` and ``k``.

    ``Z_k = S_k / √I_k`` with ``S`` a Brownian motion in the information ``I`` (∝ seeds); the
    density of ``S`` on the continuation region is carried from look to look on a grid.
    """
    cum = spent(np.asarray(fractions), alpha)
    inc = np.diff(np.concatenate([[0.0], cum]))
    info = np.asarray(fractions, dtype=float)
    cs = np.empty(len(info))
    cs[0] = stats.norm.ppf(1 - inc[0] / 2)
    if len(info) == 1:
        return cs
    lim = cs[0] * math.sqrt(info[0])
    s = np.linspace(-lim, lim, grid)
    dens = stats.norm.pdf(s, scale=math.sqrt(info[0]))
    w = np.full(grid, s[1] - s[0])
    w[[0, -1]] /= 2
    for k in range(1, len(info)):
        step = math.sqrt(info[k] - info[k - 1])
        mass = dens * w

        def cross(
            c: float,
            mass: np.ndarray = mass,
            s: np.ndarray = s,
            step: float = step,
            i: float = info[k],
        ) -> float:
            b = c * math.sqrt(i)
            return float(
                (mass * (stats.norm.sf((b - s) / step) + stats.norm.cdf((-b - s) / step))).sum()
            )

        target = max(inc[k], 1e-15)
        lo, hi = 0.0, 40.0
        for _ in range(80):  # bisection: cross() falls as c grows
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cross(mid) > target else (lo, mid)
        cs[k] = (lo + hi) / 2
        if k + 1 < len(info):
            lim = cs[k] * math.sqrt(info[k])
            new = np.linspace(-lim, lim, grid)
            dens = (mass[None, :] * stats.norm.pdf((new[:, None] - s[None, :]) / step) / step).sum(
                1
            )
            s = new
            w = np.full(grid, s[1] - s[0])
            w[[0, -1]] /= 2
    return cs


def nominal_levels(design: Design, arms: int) -> np.ndarray:
    """Nominal two-sided levels ``p[look, m]`` at which a test of level ``α / m`` rejects
    (``m = 1 .. arms``; column 0 unused)."""
    ls = design.looks
    fr = [n / design.max_seeds for n in ls]
    out = np.full((len(ls), arms + 1), np.nan)
    for m in range(1, arms + 1):
        out[:, m] = 2 * stats.norm.sf(boundaries(fr, design.family_alpha / m))
    return out


@dataclass
class PhaseResult:
    """The outcome of every arm of every simulated (or real) phase; arrays of shape (R, K)."""

    verdict: np.ndarray
    # seeds per arm run (planned; failed pairs included)
    seeds: np.ndarray
    # the index of the arm's last look
    last_look: np.ndarray
    # Holm's m at the arm's last test (its adjusted level is nominal[last_look, m])
    holm_m: np.ndarray
    # True: the arm's result may still change (the phase stopped before its last look)
    open: np.ndarray
    # the looks reached per phase (R,)
    looks_done: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def _paired(d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sd and count of the first ``n`` per-seed differences (NaN: a failed pair)."""
    x = d[..., :n]
    cnt = (~np.isnan(x)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, -1) / cnt
        var = np.nansum((x - mean[..., None]) ** 2, -1) / (cnt - 1)
    return mean, np.sqrt(var), cnt


def _t_p(mean: np.ndarray, sd: np.ndarray, cnt: np.ndarray, min_pairs: int = 2) -> np.ndarray:
    """Two-sided paired t p-values; 1 (never rejected) below ``min_pairs`` pairs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.abs(mean) / (sd / np.sqrt(cnt))
        t = np.where((sd == 0) & (mean != 0), np.inf, np.where(sd == 0, 0.0, t))
        p = 2 * stats.t.sf(t, np.maximum(cnt - 1, 1))
    return np.where(cnt >= max(min_pairs, 2), p, 1.0)


def _t_q(level: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """The two-sided t critical value at ``level`` (df = cnt − 1; inf below two pairs)."""
    with np.errstate(invalid="ignore"):
        q = stats.t.isf(level / 2, np.maximum(cnt - 1, 1))
    return np.where(cnt >= 2, q, np.inf)


def _holm(
    p: np.ndarray, at: np.ndarray, rejected: np.ndarray, nominal: np.ndarray, holm_m: np.ndarray
) -> None:
    """Holm's step-down at one look, group-sequentially: each rejection frees its level for the
    others, which are retested at the same look.

    Args:
        p: the arms' two-sided p-values (R, K).
        at: the arms tested at this look (R, K).
        rejected: the arms rejected so far (R, K); updated in place.
        nominal: this look's row of :func:`nominal_levels` (the level for each ``m``).
        holm_m: Holm's ``m`` at each arm's last test (R, K); updated in place where ``at``.
    """
    r, k = at.shape
    while True:
        m = np.maximum(k - rejected.sum(1), 1)
        level = nominal[m][:, None]
        holm_m[at] = np.broadcast_to(m[:, None], (r, k))[at]
        new = at & ~rejected & (p <= level)
        if not new.any():
            return
        rejected |= new


def _look_verdicts(
    mean: np.ndarray,
    sd: np.ndarray,
    cnt: np.ndarray,
    at: np.ndarray,
    rejected: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    eq_level: float,
    min_pairs: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decisions at one look (see the module docstring).

    Args:
        mean: the arms' mean paired difference at this look (R, K).
        sd: their sd (R, K).
        cnt: their number of pairs (R, K).
        at: the arms tested at this look (R, K).
        rejected: the arms the procedure has rejected (R, K).
        bounds: ``(τ, margin)`` per phase, each (R, 1).
        eq_level: the one-sided level of each of the two one-sided tests at this look.
        min_pairs: no arm with fewer pairs is decided ⚠️ unchanged (nor rejected, by ``_t_p``).

    Returns:
        Masks (R, K) of the arms decided ✅ down, ❌ up and ⚠️ unchanged at this look.
    """
    tau, margin = bounds
    down = at & rejected & (mean < -tau)
    up = at & rejected & (mean > tau)
    eq_q = _t_q(np.full(at.shape, eq_level * 2), cnt)  # one-sided p_look each way
    with np.errstate(invalid="ignore", divide="ignore"):
        half = eq_q * sd / np.sqrt(cnt)
    same = at & ~down & ~up & (np.abs(mean) + half <= margin) & (cnt >= max(min_pairs, 2))
    return down, up, same


def run_phase(
    diffs: np.ndarray,
    base_mean: np.ndarray | float,
    design: Design,
    *,
    available: np.ndarray | None = None,
    nominal: np.ndarray | None = None,
) -> PhaseResult:
    """Run the procedure of the module docstring over the looks.

    Args:
        diffs: per-seed differences (experiment − baseline validation MAE), shape (R, K, S) with
            ``S ≥`` the seeds needed; NaN marks a failed or excluded pair.
        base_mean: the baseline's mean validation MAE per phase (R,) or one number: scales
            ``τ`` and the equivalence margin.
        design: the design.
        available: seeds run so far per arm (R, K); a phase stops at the first look for which
            an open arm has not run enough seeds (its arms stay ``open``). None: all of ``diffs``.
        nominal: :func:`nominal_levels` for ``K`` arms, when the caller has it already.
    """
    diffs = np.asarray(diffs, dtype=float)
    r, k, s = diffs.shape
    bm = np.broadcast_to(np.abs(np.asarray(base_mean, dtype=float)), (r,))
    tau = (design.threshold * bm)[:, None]
    margin = (design.equivalence_margin * bm)[:, None]
    ls = design.looks
    avail = np.full((r, k), s) if available is None else np.asarray(available)
    nom = nominal_levels(design, k) if nominal is None else nominal
    verdict = np.full((r, k), OPEN)
    active = np.ones((r, k), bool)  # still taking seeds
    rejected = np.zeros((r, k), bool)
    seeds = np.zeros((r, k), int)
    last = np.zeros((r, k), int)
    holm_m = np.full((r, k), k)
    reached = np.ones(r, bool)  # the phase reached this look
    looks_done = np.zeros(r, int)
    for li, n in enumerate(ls):
        # a phase waits at this look while an arm that is taking seeds lacks them
        # ... and a phase whose arms are all decided looks no more
        ready = reached & active.any(1) & ~(active & (avail < min(n, s))).any(1)
        reached = ready
        if not ready.any():
            break
        looks_done[ready] = li + 1
        at = active & ready[:, None]
        seeds[at] = n
        last[at] = li
        mean, sd, cnt = _paired(diffs, n)
        _holm(_t_p(mean, sd, cnt, design.min_pairs), at, rejected, nom[li], holm_m)
        down, up, same = _look_verdicts(
            mean, sd, cnt, at, rejected, (tau, margin), nom[li, 1], design.min_pairs
        )
        verdict[down], verdict[up], verdict[same] = DOWN, UP, SAME
        active &= ~(down | up | same)
    final = looks_done == len(ls)
    still_open = active & ~final[:, None]
    return PhaseResult(verdict, seeds, last, holm_m, still_open, looks_done)


# ---------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class ArmStats:
    """What the summary reports for one arm at its last look (MAE units; NaN: none)."""

    n: int  # pairs used (failed or excluded pairs removed)
    delta: float
    sd: float
    raw: tuple[float, float]
    adjusted: tuple[float, float]
    adjusted_level: float
    equivalence: tuple[float, float]
    equivalence_level: float
    mde: float


def arm_stats(
    diffs: np.ndarray, level: float, eq_level: float, mde_level: float | None = None
) -> ArmStats:
    """Intervals and MDE from one arm's per-seed differences (NaN pairs dropped).

    ``level``: the nominal two-sided level the arm was last tested at (adjusted interval);
    ``eq_level``: the one-sided level of each of the two one-sided tests (the equivalence
    interval is the ``1 − 2 eq_level`` t interval); ``mde_level``: the two-sided level of the
    MDE (None: ``level``; the sweep uses Holm's ``α / m``, the level of a fixed design of the
    seeds that ran, since the first looks' nominal levels are far smaller).
    """
    x = np.asarray(diffs, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    nan2 = (math.nan, math.nan)
    if n < 2:
        d = float(x.mean()) if n else math.nan
        return ArmStats(n, d, math.nan, nan2, nan2, level, nan2, eq_level, math.nan)
    d, sd = float(x.mean()), float(x.std(ddof=1))
    se = sd / math.sqrt(n)

    def ci(two_sided: float) -> tuple[float, float]:
        h = float(stats.t.isf(two_sided / 2, n - 1)) * se
        return (d - h, d + h)

    return ArmStats(
        n,
        d,
        sd,
        ci(0.05),
        ci(level),
        level,
        ci(2 * eq_level),
        eq_level,
        mde(sd, n, level if mde_level is None else mde_level),
    )


def mde(sd: float, n: int, level: float, power: float = POWER) -> float:
    """The smallest true change a paired t test at two-sided ``level`` with ``n`` pairs of
    per-seed sd ``sd`` detects with ``power``: ``(t(1 − level/2) + t(power)) · sd / √n``."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return (float(stats.t.isf(level / 2, df)) + float(stats.t.ppf(power, df))) * sd / math.sqrt(n)


def seeds_for_branch(
    delta: float,
    sd: float,
    *,
    tau: float,
    margin: float,
    level: float = 0.05,
    eq_level: float = 0.05,
    limit: int = 1000,
) -> tuple[str, int | None]:
    """The branch within reach at the observed change and spread, and the seeds per arm (pairs)
    at which its interval would settle it, if the change and spread stay as observed.

    ``|Δ| > τ``: ✅/❌ needs the two-sided ``level`` interval to exclude 0, i.e. half-width
    ``< |Δ|`` (branch "down" or "up"); otherwise ⚠️ unchanged needs the ``1 − 2 eq_level``
    interval within ``±margin``, i.e. half-width ``≤ margin − |Δ|`` (branch "unchanged"). Returns
    ``(branch, None)`` beyond ``limit`` seeds, and ``("", None)`` when neither is in reach
    (``τ ≥ |Δ| ≥ margin``) or without a spread.
    """
    if not (math.isfinite(delta) and math.isfinite(sd)):
        return "", None
    if abs(delta) > tau:
        branch, room, q = ("down" if delta < 0 else "up"), abs(delta), level / 2
        strict = True
    elif abs(delta) < margin:
        branch, room, q = "unchanged", margin - abs(delta), eq_level
        strict = False
    else:
        return "", None
    if sd == 0:
        return branch, 2
    for n in range(2, limit + 1):
        half = float(stats.t.isf(q, n - 1)) * sd / math.sqrt(n)
        if half < room or (not strict and half <= room):
            return branch, n
    return branch, None


def simulate(
    design: Design,
    effects: list[float],
    sd: float,
    phases: int,
    rng: np.random.Generator,
    *,
    base_mean: float = 1.0,
) -> PhaseResult:
    """Simulate ``phases`` phases of ``len(effects)`` experiments against one baseline.

    Per seed, the baseline run and each experiment's run get independent normal noise of equal
    variance, so that one per-seed difference has sd ``sd × base_mean`` and the differences of
    two experiments correlate by 0.5 (they share the baseline's run, as in a sweep).
    ``effects`` are the true relative changes (−0.05: 5 % lower).
    """
    k, s = len(effects), design.max_seeds
    v = (sd * base_mean) ** 2 / 2
    b = rng.normal(0.0, math.sqrt(v), (phases, 1, s))
    e = rng.normal(0.0, math.sqrt(v), (phases, k, s))
    diffs = e - b + np.asarray(effects, dtype=float)[None, :, None] * base_mean
    return run_phase(diffs, base_mean, design)
