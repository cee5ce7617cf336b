"""The sweep decision rule on constructed cases: intervals (paired and Welch, checked against
scipy's own t tests), the four outcomes, single seeds, and the seeds-needed estimate."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from fusion_tuner.decision import (
    DOWN,
    INCONCLUSIVE,
    NONE,
    SAME,
    UP,
    Spread,
    decide,
    rule_sentence,
    seeds_needed,
    sweep_spread,
    t_critical,
)

BASE = {1: 1.00, 2: 1.02, 3: 0.97}


def test_a_single_seed_arm_is_never_down_or_up() -> None:
    # a 50% drop, a 50% rise: still no interval from one seed
    for exp, base in (({1: 0.5}, {1: 1.0}), ({1: 1.5}, BASE), ([0.5], [1.0, 1.01, 0.99])):
        d = decide(exp, base, 0.02)
        assert d.decision == INCONCLUSIVE
        assert math.isnan(d.low) and math.isnan(d.high) and d.method == ""
    assert decide({1: 0.5, 2: 0.5}, {1: 1.0}, 0.02).decision == INCONCLUSIVE  # one baseline seed


def test_single_seed_arms_get_seeds_needed_from_the_sweep_spread() -> None:
    spread = Spread(0.1, True, "pooled sd of the per-seed differences of e01")
    d = decide({1: 0.9}, {1: 1.0}, 0.05, spread=spread)
    assert d.decision == INCONCLUSIVE and d.spread == spread
    assert d.seeds_needed == seeds_needed(spread, 0.05) == 18
    assert d.seeds_advice() == f"about 18 seeds per arm would tell ({spread.source})"
    assert decide({1: 0.9}, {1: 1.0}, 0.05).seeds_needed is None  # no spread seen anywhere


def test_identical_arms_are_unchanged_paired_and_unpaired() -> None:
    paired = decide(dict(BASE), dict(BASE), 0.02)
    assert (paired.decision, paired.method, paired.delta) == (SAME, "paired t", 0.0)
    assert paired.low == paired.high == 0.0
    unpaired = decide([1.0, 1.002, 0.997], [1.0, 1.002, 0.997], 0.02)
    assert (unpaired.decision, unpaired.method, unpaired.delta) == (SAME, "Welch t", 0.0)
    # unpaired, the same seed-to-seed noise hides the sameness: the interval is too wide
    noisy = decide([1.0, 1.02, 0.97], [1.0, 1.02, 0.97], 0.02)
    assert noisy.decision == INCONCLUSIVE and noisy.high - noisy.low > 2 * noisy.margin


def test_a_clear_shift_with_small_spread_is_down_or_up() -> None:
    down = decide({k: v - 0.1 + 0.001 * k for k, v in BASE.items()}, BASE, 0.02)
    assert down.decision == DOWN and down.high < 0 and down.delta < -down.margin
    up = decide({k: v + 0.1 + 0.001 * k for k, v in BASE.items()}, BASE, 0.02)
    assert up.decision == UP and up.low > 0
    welch_down = decide([0.80, 0.81, 0.79], [1.0, 1.01, 0.99], 0.02)
    assert (welch_down.decision, welch_down.method) == (DOWN, "Welch t")


def test_a_shift_inside_the_noise_is_inconclusive() -> None:
    # 5% lower on average, but the per-seed differences scatter from -25% to +15%
    d = decide({1: 0.75, 2: 1.17, 3: 0.92}, BASE, 0.02)
    assert d.decision == INCONCLUSIVE
    assert d.low < -d.margin and d.high > d.margin
    assert d.spread is not None and d.spread.paired
    assert d.seeds_needed is None or d.seeds_needed > 3


def test_a_real_change_about_the_threshold_size_is_inconclusive_without_seed_advice() -> None:
    # every seed about 1.9% lower: the interval excludes 0, the mean change is just inside the
    # 2% band, and the interval crosses the band's edge
    d = decide({1: 0.983, 2: 1.001, 3: 0.949}, BASE, 0.02)
    assert d.high < 0 and d.low < -d.margin < d.delta
    assert d.decision == INCONCLUSIVE and d.seeds_needed is None and d.near_threshold
    assert d.seeds_advice() == "the change is about the threshold's size"


def test_paired_interval_equals_scipys_paired_t_test() -> None:
    exp = {1: 0.95, 2: 0.96, 3: 0.90}
    d = decide(exp, BASE, 0.02)
    ci = stats.ttest_rel(list(exp.values()), list(BASE.values())).confidence_interval()
    assert d.method == "paired t"
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_welch_interval_when_the_seeds_differ() -> None:
    exp = {1: 0.95, 2: 0.96, 4: 0.90}  # seed 4 instead of 3: no pairing
    d = decide(exp, BASE, 0.02)
    ci = stats.ttest_ind(
        list(exp.values()), list(BASE.values()), equal_var=False
    ).confidence_interval()
    assert d.method == "Welch t"
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-12)


def test_pairing_removes_shared_seed_effects() -> None:
    # seeds move both arms together by ±20%; the experiment is always 5% lower
    base = {1: 0.8, 2: 1.0, 3: 1.2}
    exp = {k: 0.95 * v for k, v in base.items()}
    assert decide(exp, base, 0.02).decision == DOWN
    assert decide(list(exp.values()), list(base.values()), 0.02).decision == INCONCLUSIVE


def test_t_critical_values_are_not_2() -> None:
    assert t_critical(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_critical(1e6) == pytest.approx(1.96, abs=1e-3)


def test_no_result_is_no_decision() -> None:
    assert decide({}, BASE, 0.02).decision == NONE
    assert decide([0.9], [], 0.02).decision == NONE


def test_sweep_spread_pools_paired_differences_else_arms() -> None:
    paired = sweep_spread({"e01": [0.1, -0.1], "e02": [0.2, 0.0, -0.2], "e03": [0.5]}, {})
    assert paired is not None and paired.paired
    # pooled variance: (1 * 0.02 + 2 * 0.04) / 3
    assert paired.sd == pytest.approx(math.sqrt((0.02 + 0.08) / 3))
    assert "e01, e02" in paired.source and "e03" not in paired.source
    arms = sweep_spread({"e01": [0.1]}, {"baseline": [1.0, 1.2], "e01": [0.9]})
    assert arms is not None and not arms.paired
    assert arms.sd == pytest.approx(math.sqrt(0.02) * math.sqrt(2))
    assert sweep_spread({"e01": [0.1]}, {"baseline": [1.0]}) is None


def test_rule_sentence_states_the_numbers() -> None:
    text = rule_sentence(0.02, 0.0159)
    assert (
        "95% t interval" in text and "τ = 2% of the baseline's mean validation MAE = 0.0159" in text
    )
    assert "paired by seed" in text and "Welch" in text and "inconclusive" in text
