"""The sequential, family-wise decision procedure (fusion_tuner.sweeps.sequential): its
boundaries, its decisions on constructed cases, the advice, and a Monte-Carlo check of its
operating characteristics (no training: per-seed differences from known distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fusion_tuner.sweeps.sequential import (
    DOWN,
    OPEN,
    SAME,
    UP,
    Design,
    arm_stats,
    boundaries,
    looks,
    mde,
    nominal_levels,
    run_phase,
    seeds_for_branch,
    simulate,
    spent,
)

# The README's phase-1 sample (3 paired seeds, 95% paired t, τ = 2% of 0.981 = 0.01962):
# (Δ, interval low, interval high) of validation MAE against the baseline.
README_SAMPLE = {
    "e01_conservative_regularization": (-0.005324, -0.03489, 0.02424),
    "e06_lower_lr": (-0.1987, -1.041, 0.6434),
    "e07_conservative_lr": (-0.1741, -0.6754, 0.3271),
    "tuned_regularization": (-0.1746, -1.082, 0.7329),
}
README_TAU = 0.01962


def test_looks_add_seeds_per_round_up_to_the_cap() -> None:
    assert looks(3, 2, 10) == [3, 5, 7, 9, 10]
    assert looks(3, 2, 3) == [3]  # max_seeds = 3: today's fixed design, one look
    assert looks(3, 3, 9) == [3, 6, 9]
    assert Design().looks == [3, 5, 7, 9, 10]
    with pytest.raises(ValueError, match="max_seeds"):
        Design(max_seeds=2)


def test_one_look_spends_the_whole_level() -> None:
    assert boundaries([1.0], 0.05)[0] == pytest.approx(stats.norm.isf(0.025))
    assert spent(1.0, 0.05) == pytest.approx(0.05)
    assert nominal_levels(Design(max_seeds=3), 5)[0, 1:].tolist() == pytest.approx(
        [0.05, 0.025, 0.05 / 3, 0.0125, 0.01]
    )


def test_boundaries_spend_the_level_look_by_look() -> None:
    # an independent check: simulate the z statistics of a Brownian motion and count the
    # first crossings of the computed boundaries
    fractions = [0.3, 0.5, 0.7, 0.9, 1.0]
    c = boundaries(fractions, 0.05)
    assert np.all(np.diff(c) < 0)  # O'Brien-Fleming type: strict early, near 1.96 at the end
    rng = np.random.default_rng(7)
    steps = rng.normal(size=(400_000, 5)) * np.sqrt(np.diff([0.0, *fractions]))
    z = np.abs(np.cumsum(steps, 1)) / np.sqrt(fractions)
    crossed = z >= c
    first = np.where(crossed.any(1), crossed.argmax(1), -1)
    rate = [(first == k).mean() for k in range(5)]
    expected = np.diff(np.concatenate([[0.0], spent(np.array(fractions), 0.05)]))
    assert rate == pytest.approx(expected.tolist(), abs=0.0012)
    assert sum(rate) == pytest.approx(0.05, abs=0.0012)


def _phase(arms: list[list[float]], base_mean: float = 1.0, **kw) -> object:
    d = np.array(arms, dtype=float)[None]
    return run_phase(d, base_mean, Design(**kw))


def test_a_clear_drop_is_down_early_and_stops_taking_seeds() -> None:
    drop = [-0.20, -0.21, -0.19, -0.2, -0.2, -0.2, -0.2, -0.2, -0.2, -0.2]
    r = _phase([drop, [0.0] * 10], threshold=0.02)
    # O'Brien-Fleming spends almost nothing at 3 seeds (df 2): decided at the second look
    assert r.verdict[0].tolist() == [DOWN, SAME] and r.seeds[0].tolist() == [5, 3]
    assert not r.open.any() and r.looks_done[0] == 2  # nothing left to look at after 5
    # a single look (max_seeds = 3) decides at 3 seeds
    fixed = _phase([drop[:3], [0.0] * 3], max_seeds=3)
    assert fixed.verdict[0].tolist() == [DOWN, SAME] and fixed.seeds[0].tolist() == [3, 3]


def test_an_arm_waits_for_its_seeds_and_a_rerun_replays_the_same_decisions() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.0, 0.03, (1, 3, 10))
    d[0, 0] -= 0.5  # decided at the second look (5 seeds)
    full = run_phase(d, 1.0, Design())
    assert full.verdict[0, 0] == DOWN and full.seeds[0, 0] == 5
    # 3 seeds have run: every arm waits for the second look
    first = run_phase(d, 1.0, Design(), available=np.array([[3, 3, 3]]))
    assert first.looks_done[0] == 1 and first.open[0].tolist() == [True, True, True]
    # 5 seeds: the first arm is decided and stops, the others wait for 7 where still open
    part = run_phase(d, 1.0, Design(), available=np.array([[5, 5, 5]]))
    assert part.looks_done[0] == 2
    assert part.verdict[0, 0] == DOWN and not part.open[0, 0]
    assert part.open[0, 1:].tolist() == (full.seeds[0, 1:] > 5).tolist()
    # all seeds an arm needs available: the same result as one pass
    again = run_phase(d, 1.0, Design(), available=np.array([[5, 10, 10]]))
    assert again.verdict.tolist() == full.verdict.tolist()
    assert again.seeds.tolist() == full.seeds.tolist()


def test_equivalence_needs_the_tost_interval_within_the_margin() -> None:
    # per-seed differences of ±1% around 0: the 90% interval lies well within ±5%
    tight = _phase([[0.01, -0.01, 0.005, -0.004, 0.0]], max_seeds=5)
    assert tight.verdict[0, 0] == SAME and tight.seeds[0, 0] == 3
    # ±2%: at 3 seeds the first look's strict level leaves the interval wider than ±5%
    arm = [0.02, -0.02, 0.015, -0.01, 0.0]
    r = _phase([arm], max_seeds=5)
    assert r.verdict[0, 0] == SAME and r.seeds[0, 0] == 5
    # one look (max_seeds = 3): the 90% interval of the first 3 seeds
    one = _phase([arm[:3]], max_seeds=3)
    lo, hi = arm_stats(np.array(arm[:3]), 0.05, 0.05).equivalence
    assert hi - lo == pytest.approx(2 * stats.t.isf(0.05, 2) * np.std(arm[:3], ddof=1) / 3**0.5)
    assert one.verdict[0, 0] == SAME and lo >= -0.05 and hi <= 0.05
    wide = _phase([[0.06, -0.06, 0.05]], max_seeds=3)
    assert wide.verdict[0, 0] == OPEN


def test_a_significant_change_below_tau_is_not_down() -> None:
    tiny = [-0.010, -0.011, -0.009, -0.010, -0.0105, -0.0095, -0.01, -0.01, -0.01, -0.01]
    r = _phase([tiny], threshold=0.02)
    assert r.verdict[0, 0] == SAME  # 1% lower, surely, but within the 5% margin
    r = _phase([tiny], threshold=0.02, equivalence_margin=0.01)
    assert r.verdict[0, 0] == OPEN and r.seeds[0, 0] == 10  # neither: runs to the cap


def test_a_failed_pair_removes_only_itself() -> None:
    arm = [-0.20, math.nan, -0.21, -0.19]
    s = arm_stats(np.array(arm), 0.05, 0.05)
    assert s.n == 3
    ci = stats.ttest_1samp([-0.20, -0.21, -0.19], 0.0).confidence_interval()
    assert s.raw == pytest.approx((ci.low, ci.high))
    assert s.adjusted == pytest.approx(s.raw)
    r = _phase([[-0.20, math.nan, -0.21, -0.19]], max_seeds=4, initial_seeds=4)
    assert r.verdict[0, 0] == DOWN


def test_no_decision_on_two_pairs_in_a_design_of_three_seeds() -> None:
    """Two surviving pairs whose differences agree (sd 0.0001, t about 2,000 on one degree of
    freedom) are not decided in a 3-seed design: failed runs, not the design, chose them."""
    two = [[-0.2000, -0.2001, math.nan]]
    assert _phase(two, max_seeds=3, initial_seeds=3).verdict[0, 0] == OPEN
    assert _phase([[-0.2000, -0.2001, -0.1999]], max_seeds=3, initial_seeds=3).verdict[0, 0] == DOWN
    # a design of two seeds per arm (the user's choice) decides on two
    assert _phase([[-0.2000, -0.2001]], max_seeds=2, initial_seeds=2).verdict[0, 0] == DOWN
    assert Design(initial_seeds=5, max_seeds=5).min_pairs == 3


def test_holm_passes_a_rejections_level_to_the_others() -> None:
    nom = nominal_levels(Design(max_seeds=3), 2)
    # arm 2's p-value lies between α/2 and α: rejected only after arm 1 frees its level
    strong = [-0.3, -0.31, -0.29]
    p_mid = 0.03
    t = stats.t.isf(p_mid / 2, 2)
    mid = list(-0.1 + np.array([-1.0, 0.0, 1.0]) * (0.1 / t) * math.sqrt(3))
    assert nom[0, 2] < stats.ttest_1samp(mid, 0).pvalue < nom[0, 1]
    r = _phase([strong, mid], max_seeds=3)
    assert r.verdict[0].tolist() == [DOWN, DOWN]
    alone = _phase([[0.0, 0.01, -0.01], mid], max_seeds=3, equivalence_margin=0.001)
    assert alone.verdict[0, 1] == OPEN  # tested at α/2 only


def test_mde_is_the_80_percent_power_change() -> None:
    m = mde(0.03, 10, 0.05)
    assert m == pytest.approx((stats.t.isf(0.025, 9) + stats.t.ppf(0.8, 9)) * 0.03 / math.sqrt(10))
    # check the power by simulation
    rng = np.random.default_rng(5)
    x = rng.normal(-m, 0.03, (40_000, 10))
    p = stats.ttest_1samp(x, 0.0, axis=1).pvalue
    assert (p <= 0.05).mean() == pytest.approx(0.8, abs=0.02)
    assert math.isnan(mde(0.03, 1, 0.05))


@pytest.mark.parametrize(
    ("name", "branch", "needed"),
    [
        ("e01_conservative_regularization", "unchanged", 6),
        ("e06_lower_lr", "down", 14),
        ("e07_conservative_lr", "down", 8),
        ("tuned_regularization", "down", 20),
    ],
)
def test_seeds_for_the_branch_in_reach_reproduce_the_reviewers_numbers(
    name: str, branch: str, needed: int
) -> None:
    # recomputed from the README's sample: the sd of the per-seed differences from the
    # 95% interval's half-width, under the old rule (95% interval, ±τ band)
    delta, lo, hi = README_SAMPLE[name]
    sd = (hi - lo) / 2 * math.sqrt(3) / stats.t.isf(0.025, 2)
    got = seeds_for_branch(delta, sd, tau=README_TAU, margin=README_TAU, eq_level=0.025)
    assert got == (branch, needed)
    if branch == "unchanged":  # at the old advice of 4, e01's interval still crosses ±τ
        half4 = stats.t.isf(0.025, 3) * sd / 2
        assert abs(delta) + half4 > README_TAU


def test_no_branch_in_reach_or_no_spread() -> None:
    assert seeds_for_branch(0.03, 0.01, tau=0.05, margin=0.02) == ("", None)
    assert seeds_for_branch(0.0, math.nan, tau=0.02, margin=0.05) == ("", None)
    assert seeds_for_branch(-0.5, 10.0, tau=0.02, margin=0.05, limit=50) == ("down", None)


# ---------------------------------------------------------------- operating characteristics

PHASES = 4000


def _mc_bound(p: float) -> float:
    """p plus three Monte-Carlo standard errors at PHASES phases."""
    return p + 3 * math.sqrt(p * (1 - p) / PHASES)


@pytest.mark.parametrize("sd", [0.03, 0.10])
def test_family_wise_false_decisions_stay_below_the_level(sd: float) -> None:
    # no experiment changes anything; τ = 0 makes it the worst case of the test itself
    for threshold in (0.02, 0.0):
        r = simulate(Design(threshold=threshold), [0.0] * 5, sd, PHASES, np.random.default_rng(11))
        any_false = ((r.verdict == DOWN) | (r.verdict == UP)).any(1).mean()
        assert any_false <= _mc_bound(0.05), (sd, threshold, any_false)


def test_no_change_is_called_unchanged_with_the_default_cap() -> None:
    r = simulate(Design(), [0.0] * 5, 0.03, PHASES, np.random.default_rng(12))
    p_same = (r.verdict == SAME).mean()
    assert p_same >= 0.6
    # with 3 seeds only, it mostly cannot tell
    fixed = simulate(Design(max_seeds=3), [0.0] * 5, 0.03, PHASES, np.random.default_rng(12))
    assert (fixed.verdict == SAME).mean() < 0.5
    print(f"P(unchanged | no change, sd 3%): {p_same:.3f}; mean seeds {r.seeds.mean():.2f}")


def test_a_five_percent_drop_is_found_with_the_default_cap() -> None:
    # the hardest case for Holm: one real change among five experiments
    r = simulate(Design(), [-0.05, 0.0, 0.0, 0.0, 0.0], 0.03, PHASES, np.random.default_rng(13))
    p_down = (r.verdict[:, 0] == DOWN).mean()
    assert p_down >= 0.8
    assert r.seeds[:, 0].mean() < 10  # decided arms stop early
    print(f"P(down | -5%, sd 3%): {p_down:.3f}; mean seeds of that arm {r.seeds[:, 0].mean():.2f}")
