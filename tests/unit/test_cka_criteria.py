"""The plan's CKA criteria read against the seed-to-seed floor: not measurable with too few
seed pairs or a floor wider than the target, not met within seed noise, else the range."""

from __future__ import annotations

import pytest

from fusion_tuner.sweeps.plan_report import MIN_FLOOR_PAIRS, cka_floor, cka_verdict


def test_the_floor_is_the_mean_and_t_interval_over_seed_pairs() -> None:
    m, lo, hi = cka_floor([0.95, 0.96, 0.97])
    # sd 0.01, t(0.975, 2) = 4.303: half-width 4.303 * 0.01 / sqrt(3)
    assert m == pytest.approx(0.96)
    assert hi - m == pytest.approx(4.302653 * 0.01 / 3**0.5, rel=1e-5)
    assert m - lo == pytest.approx(hi - m)


@pytest.mark.parametrize(
    ("value", "floor", "met", "why"),
    [
        # too few seed pairs for a floor
        (0.88, [0.95, 0.96], None, "not measurable at this size: 2 seed pair(s)"),
        # the floor alone is wider than 0.85-0.92: seed noise decides
        (0.88, [0.70, 0.95, 0.99], None, "wider than the target range 0.85–0.92"),
        # in the range, but as alike as two seeds of one configuration
        (0.955, [0.95, 0.96, 0.97], False, "no more than a reseed does"),
        # below the floor and in the range: the plan's pattern
        (0.88, [0.95, 0.96, 0.97], True, ""),
        # below the floor but outside the range
        (0.70, [0.95, 0.96, 0.97], False, "outside 0.85–0.92"),
    ],
)
def test_cka_verdict(value: float, floor: list[float], met: bool | None, why: str) -> None:
    got_met, got_why = cka_verdict(value, floor, 0.85, 0.92)
    assert got_met is met
    assert why in got_why and (why or got_why == "")


def test_three_pairs_are_the_minimum() -> None:
    assert MIN_FLOOR_PAIRS == 3
    assert cka_verdict(0.3, [0.9, 0.91, 0.92], 0.2, 0.4) == (True, "")
