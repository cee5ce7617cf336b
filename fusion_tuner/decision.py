"""One comparison's t interval and decision words (the labels, next steps, :func:`decide`).

A sweep's decisions now come from the sequential, family-wise procedure of
:mod:`fusion_tuner.sweeps.sequential` (see :mod:`fusion_tuner.sweeps.assess`); :func:`decide`
below is the single-comparison rule the plan report's "validation MAE lower" criterion and
``analyze compare`` over seed sets use: is one configuration's validation MAE lower, higher or
unchanged against another's, or can the seeds that ran not tell?

Per experiment, on validation MAE (the selection metric), with ``τ = threshold × mean baseline
val MAE`` (threshold 0.02 by default) and a 95 % t interval ``[lo, hi]`` of the change
``Δ = experiment − baseline``:

* **paired** when both arms completed the same seeds (at least 2): the interval of the mean of
  the per-seed differences, ``mean(d) ± t(0.975, n−1) · sd(d) / √n``;
* **Welch** otherwise (each arm at least 2 seeds): the difference of the means with
  ``se = √(s_e²/n_e + s_b²/n_b)`` and Welch–Satterthwaite degrees of freedom;
* an arm with a single seed has no interval.

Then ✅ **down** when the whole interval is below 0 and ``Δ < −τ``; ❌ **up** when the whole
interval is above 0 and ``Δ > τ``; ⚠️ **unchanged** when the interval lies within ``[−τ, τ]``;
otherwise ❓ **inconclusive** (always so for a single-seed arm).

For an inconclusive experiment, :func:`seeds_needed` estimates how many seeds per arm would
shrink the interval's half-width to ``τ``: the smallest ``n`` with ``t(0.975, df(n)) · s / √n ≤ τ``
(``df = n−1`` paired, ``2n−2`` unpaired), where ``s`` is the spread of one seed's difference:
the sd of this experiment's paired differences; else ``√(s_e² + s_b²)``; else, for single-seed
arms, the spread seen elsewhere in the sweep (:func:`sweep_spread`). Which spread was used is
reported with the number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from scipy import stats

DOWN, SAME, UP, INCONCLUSIVE, NONE = (
    "✅ down",
    "⚠️ unchanged",
    "❌ up",
    "❓ inconclusive",
    "n/a",
)
REFERENCE = "(reference)"
# the runs (of the experiment or of the baseline) do not beat the training-mean predictor
LEARNED_NOTHING = "🚫 learned nothing"
NEXT_STEP = {
    DOWN: "continue fine-tuning around it",
    SAME: "try the phase 4 settings",
    UP: "back off to more conservative settings",
    INCONCLUSIVE: "run more seeds before deciding",
    LEARNED_NOTHING: "make the runs learn first (more epochs or data; check the learning rate)",
}
CONFIDENCE = 0.95
# seeds_needed searches up to this many seeds per arm (more: "not within reach")
MAX_SEEDS = 100


class Spread(NamedTuple):
    """The spread of one seed's validation-MAE difference (experiment − baseline).

    ``sd`` is the sd of a per-seed difference when ``paired``; unpaired it is
    ``√(s_e² + s_b²)``, so that either way the standard error with ``n`` seeds per arm is
    ``sd / √n``.
    """

    sd: float
    paired: bool
    source: str


class Decision(NamedTuple):
    """The decision for one experiment against the baseline (see the module docstring).

    The first four fields are the summary's historical ones; ``margin`` is ``τ``.
    """

    decision: str
    # mean change of validation MAE (experiment − baseline)
    delta: float
    # τ = threshold × mean baseline validation MAE
    margin: float
    # completed seeds of the experiment
    n: int
    # completed seeds of the baseline
    n_base: int = 0
    # the 95 % interval of delta (NaN when there is none)
    low: float = math.nan
    high: float = math.nan
    # "paired t" | "Welch t" | "" (no interval)
    method: str = ""
    # seeds per arm that would narrow the interval to ±τ (inconclusive only; None: unknown)
    seeds_needed: int | None = None
    # the spread seeds_needed used
    spread: Spread | None = None
    # mean change of test MAE (experiment − baseline); filled in by the summary
    test_delta: float | None = None
    # validation and test changes have opposite signs
    disagrees: bool = False
    # caveats in words (epochs, why inconclusive)
    note: str = ""
    # the baseline's mean validation MAE
    base_mean: float = math.nan
    # the sequential procedure's record of this arm (fusion_tuner.sweeps.assess.ArmResult)
    arm: Any = None

    @property
    def delta_pct(self) -> float:
        """``delta`` in % of the baseline's mean validation MAE."""
        return 100 * self.delta / self.base_mean if self.base_mean else math.nan

    @property
    def near_threshold(self) -> bool:
        """Inconclusive although the interval is narrower than ±τ: the change is about τ."""
        return (
            self.decision == INCONCLUSIVE
            and bool(self.method)
            and (self.high - self.low) / 2 <= self.margin
        )

    def seeds_advice(self) -> str:
        """How many seeds per arm would settle an inconclusive decision, in words ("" else)."""
        if self.decision != INCONCLUSIVE:
            return ""
        if self.near_threshold:
            return "the change is about the threshold's size"
        if self.spread is None:
            return "no spread seen in this sweep to estimate the seeds needed"
        if self.seeds_needed is None:
            return f"more than {MAX_SEEDS} seeds per arm needed ({self.spread.source})"
        return f"about {self.seeds_needed} seeds per arm would tell ({self.spread.source})"

    def pct(self, value: float) -> float:
        """``value`` (a change of validation MAE) in % of the baseline's mean."""
        return 100 * value / self.base_mean if self.base_mean else math.nan


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, math.sqrt(var)


def t_critical(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided t critical value (4.30 at 2 degrees of freedom, 1.96 in the limit)."""
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def seeds_needed(spread: Spread, tau: float, confidence: float = CONFIDENCE) -> int | None:
    """Seeds per arm at which the interval's half-width falls to ``tau`` (None: over MAX_SEEDS)."""
    if tau <= 0:
        return None
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1 if spread.paired else 2 * n - 2
        if t_critical(df, confidence) * spread.sd / math.sqrt(n) <= tau:
            return n
    return None


def _as_seeds(values: Mapping[int, float] | Sequence[float]) -> dict[int, float] | None:
    """Returns ``values`` by seed, or None for a plain sequence (never paired)."""
    return dict(values) if isinstance(values, Mapping) else None


class _Change(NamedTuple):
    """The change of validation MAE and what its t interval needs."""

    delta: float
    se: float
    df: float
    method: str
    # the spread of one seed's difference, for seeds_needed
    spread: Spread


def _paired_change(es: dict[int, float] | None, bs: dict[int, float] | None) -> _Change | None:
    """Returns the mean of the per-seed differences with its standard error, when both arms
    ran the same seeds (at least 2); else None."""
    if es is None or bs is None or set(es) != set(bs) or len(es) < 2:
        return None
    diffs = [es[k] - bs[k] for k in sorted(es)]
    delta, sd = mean_sd(diffs)
    own = Spread(sd, True, f"sd of this experiment's {len(diffs)} per-seed differences")
    return _Change(delta, sd / math.sqrt(len(diffs)), len(diffs) - 1, "paired t", own)


def _welch_change(ev: list[float], bv: list[float], mb: float) -> _Change | None:
    """Returns the difference of the means with Welch's standard error and degrees of freedom,
    when each arm has at least 2 seeds; else None."""
    if len(ev) < 2 or len(bv) < 2:
        return None
    (me, se_), (_, sb) = mean_sd(ev), mean_sd(bv)
    ve, vb = se_**2 / len(ev), sb**2 / len(bv)
    se = math.sqrt(ve + vb)
    df = (
        (ve + vb) ** 2 / (ve**2 / (len(ev) - 1) + vb**2 / (len(bv) - 1))
        if se > 0
        else len(ev) + len(bv) - 2
    )
    own = Spread(
        math.sqrt(se_**2 + sb**2), False, "seed-to-seed sd of this experiment and the baseline"
    )
    return _Change(me - mb, se, df, "Welch t", own)


def _direction(delta: float, lo: float, hi: float, tau: float) -> str:
    """Returns the decision for a change and its interval (the rule in the module docstring)."""
    if hi < 0 and delta < -tau:
        return DOWN
    if lo > 0 and delta > tau:
        return UP
    if -tau <= lo and hi <= tau:
        return SAME
    return INCONCLUSIVE


def _without_interval(
    ev: list[float], bv: list[float], tau: float, spread: Spread | None, confidence: float
) -> Decision:
    """Returns the decision when an arm has a single seed: inconclusive, with the seeds needed
    estimated from ``spread`` (the sweep's, when given)."""
    mb = mean_sd(bv)[0]
    needed = seeds_needed(spread, tau, confidence) if spread is not None else None
    return Decision(
        INCONCLUSIVE,
        mean_sd(ev)[0] - mb,
        tau,
        len(ev),
        len(bv),
        seeds_needed=needed,
        spread=spread,
        note="a single seed in an arm gives no interval",
        base_mean=mb,
    )


def decide(
    exp: Mapping[int, float] | Sequence[float],
    base: Mapping[int, float] | Sequence[float],
    threshold: float,
    *,
    confidence: float = CONFIDENCE,
    spread: Spread | None = None,
) -> Decision:
    """Decide one experiment against the baseline by the rule in the module docstring.

    Args:
        exp: the experiment's validation MAEs, by seed (a mapping pairs with ``base`` when both
            hold the same seeds) or as a plain sequence (never paired).
        base: the baseline's, likewise.
        threshold: the relative change that counts (``τ = threshold × mean(base)``).
        confidence: of the interval.
        spread: the spread to estimate seeds needed from when an arm has a single seed (see
            :func:`sweep_spread`); None: no estimate.

    Returns:
        The decision (``n/a`` when an arm has no value; inconclusive without an interval).
    """
    ev = list(exp.values()) if isinstance(exp, Mapping) else list(exp)
    bv = list(base.values()) if isinstance(base, Mapping) else list(base)
    if not ev or not bv:
        return Decision(NONE, math.nan, math.nan, len(ev), len(bv))
    mb = mean_sd(bv)[0]
    tau = threshold * abs(mb)
    change = _paired_change(_as_seeds(exp), _as_seeds(base))
    if change is None:
        change = _welch_change(ev, bv, mb)
    if change is None:
        return _without_interval(ev, bv, tau, spread, confidence)
    half = t_critical(change.df, confidence) * change.se
    lo, hi = change.delta - half, change.delta + half
    verdict = _direction(change.delta, lo, hi, tau)
    own = change.spread
    needed = seeds_needed(own, tau, confidence) if verdict == INCONCLUSIVE and half > tau else None
    return Decision(
        verdict,
        change.delta,
        tau,
        len(ev),
        len(bv),
        lo,
        hi,
        change.method,
        needed,
        own if verdict == INCONCLUSIVE else None,
        base_mean=mb,
    )


def sweep_spread(
    paired_diffs: Mapping[str, Sequence[float]], arms: Mapping[str, Sequence[float]]
) -> Spread | None:
    """The spread seen in a sweep, for experiments whose own arms cannot give one.

    Args:
        paired_diffs: per experiment, its per-seed differences against the baseline.
        arms: per experiment (baseline included), its validation MAEs.

    Returns:
        The pooled sd of the per-seed differences of every experiment with at least two;
        else the pooled seed-to-seed sd within every arm with at least two seeds, times √2 (a
        difference of two independent runs); else None.
    """
    pooled = _pooled({k: v for k, v in paired_diffs.items() if len(v) >= 2})
    if pooled is not None:
        sd, names = pooled
        return Spread(sd, True, f"pooled sd of the per-seed differences of {names}")
    pooled = _pooled({k: v for k, v in arms.items() if len(v) >= 2})
    if pooled is not None:
        sd, names = pooled
        return Spread(
            sd * math.sqrt(2),
            False,
            f"pooled seed-to-seed sd within {names}, × √2 for a difference",
        )
    return None


def _pooled(groups: Mapping[str, Sequence[float]]) -> tuple[float, str] | None:
    if not groups:
        return None
    ss = sum(mean_sd(v)[1] ** 2 * (len(v) - 1) for v in groups.values())
    dof = sum(len(v) - 1 for v in groups.values())
    return math.sqrt(ss / dof), ", ".join(groups)


def rule_sentence(threshold: float, tau: float | None, confidence: float = CONFIDENCE) -> str:
    """The rule in one sentence, with its numbers (``tau``: τ in MAE units, None if unknown)."""
    value = f" = {tau:.4g}" if tau is not None and math.isfinite(tau) else ""
    return (
        f"Rule: each experiment's change in validation MAE against the baseline gets a "
        f"{100 * confidence:g}% t interval (paired by seed when both ran the same seeds, Welch's "
        "otherwise); ✅ down when the whole interval is below 0 and the mean change below −τ, "
        "❌ up when the interval is above 0 and the mean above +τ, ⚠️ unchanged when the interval "
        "lies within ±τ, ❓ inconclusive otherwise (always with a single seed in an arm), where "
        f"τ = {100 * threshold:g}% of the baseline's mean validation MAE{value}."
    )
