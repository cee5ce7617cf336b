"""The skill check against the training-mean predictor (metrics.json, the done: line)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion_tuner.metrics import MIN_SKILL, learned_nothing, skill_metrics, skill_words


def test_skill_is_one_minus_the_mae_ratio_to_the_mean_predictor() -> None:
    target = np.array([1.0, 2.0, 3.0, 6.0])
    # the mean predictor at 2.0: |−1| + 0 + 1 + 4 = 6 → MAE 1.5
    out = skill_metrics(target, target + 0.3, train_mean=2.0)
    assert out["mean_predictor_mae"] == pytest.approx(1.5)
    assert out["skill"] == pytest.approx(1 - 0.3 / 1.5)
    # predicting the training mean itself has skill 0 and learned nothing
    same = skill_metrics(target, np.full(4, 2.0), train_mean=2.0)
    assert same["skill"] == pytest.approx(0.0) and learned_nothing(same["skill"])
    assert skill_metrics(target, np.full(4, 9.0), train_mean=2.0)["skill"] < 0
    assert math.isnan(skill_metrics(np.zeros(0), np.zeros(0), 1.0)["skill"])
    assert math.isnan(skill_metrics(np.full(3, 2.0), np.full(3, 2.5), 2.0)["skill"])


def test_learned_nothing_below_the_named_threshold_only() -> None:
    assert MIN_SKILL == 0.1
    assert learned_nothing(0.0999) and learned_nothing(-2.11)
    assert not learned_nothing(0.1) and not learned_nothing(0.8)
    assert not learned_nothing(None) and not learned_nothing(float("nan"))


def test_skill_words_name_a_run_that_learned_nothing() -> None:
    good = {
        "val": {"mae": 0.5, "skill": 0.42, "r2": 0.61, "mean_predictor_mae": 0.86},
        "test": {"skill": 0.4, "r2": 0.58},
    }
    words = skill_words(good)
    assert words == (
        "skill val 0.42 / test 0.40 against the training-mean predictor (R² 0.61 / 0.58)"
    )
    bad = {
        "val": {"mae": 0.8601, "skill": 0.0004, "r2": -0.01, "mean_predictor_mae": 0.8604},
        "test": {"skill": -0.02, "r2": -2.11},
    }
    assert skill_words(bad).startswith(
        "LEARNED NOTHING: validation MAE 0.8601 against 0.8604 for predicting the training mean;"
    )
    assert "R² -0.01 / -2.11" in skill_words(bad)
