"""CKA: exactness against the Gram-matrix formula, invariances, the debiased estimator, errors."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_tuner.analysis.cka_estimators import (
    CKAAccumulator,
    CKAError,
    gram_cka,
    linear_cka,
    rbf_cka,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_cka_of_x_with_itself_is_one() -> None:
    x = rng().normal(size=(200, 16))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_rotation_and_isotropic_scaling() -> None:
    x, y = rng(1).normal(size=(300, 12)), rng(2).normal(size=(300, 8))
    y = y + 0.5 * x[:, :8]  # some shared structure
    q, _ = np.linalg.qr(rng(3).normal(size=(12, 12)))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(7.5 * x, 0.01 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x @ q * 3.0, y, debiased=True) == pytest.approx(
        linear_cka(x, y, debiased=True), abs=1e-10
    )


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_space_equals_gram_formula(debiased: bool) -> None:
    x, y = rng(4).normal(size=(150, 10)) + 3.0, rng(5).normal(size=(150, 6))
    y[:, :3] += x[:, :3]
    expected = gram_cka(x @ x.T, y @ y.T, debiased=debiased)
    assert linear_cka(x, y, debiased=debiased, batch_size=37) == pytest.approx(expected, abs=1e-10)


def test_debiased_is_near_zero_for_independent_features_where_biased_is_not() -> None:
    x, y = rng(6).normal(size=(500, 64)), rng(7).normal(size=(500, 64))
    debiased, biased = linear_cka(x, y, debiased=True), linear_cka(x, y)
    assert abs(debiased) < 0.05
    assert biased > 0.08 and biased > 3 * abs(debiased)


def test_streaming_does_not_depend_on_batching() -> None:
    x, y = rng(8).normal(size=(101, 5)), rng(9).normal(size=(101, 7))
    assert linear_cka(x, y, batch_size=1000) == pytest.approx(
        linear_cka(x, y, batch_size=4), abs=1e-12
    )


def test_constant_features_raise_a_clear_error() -> None:
    x = np.ones((50, 4))
    with pytest.raises(CKAError, match="constant features"):
        linear_cka(x, rng().normal(size=(50, 3)))
    with pytest.raises(CKAError, match="sample counts differ"):
        linear_cka(rng().normal(size=(5, 2)), rng().normal(size=(6, 2)))


def test_accumulator_gives_the_cross_matrix() -> None:
    a, b = rng(10).normal(size=(80, 4)), rng(11).normal(size=(80, 3))
    acc = CKAAccumulator()
    acc.update({"A:s": a[:40], "B:t": b[:40]})
    acc.update({"A:s": a[40:], "B:t": b[40:]})
    assert acc.n == 80
    assert acc.cka("A:s", "B:t") == pytest.approx(gram_cka(a @ a.T, b @ b.T), abs=1e-10)


def test_rbf_cka_is_one_on_itself_and_limited_in_n() -> None:
    x = rng(12).normal(size=(60, 5))
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert 0 < rbf_cka(x, rng(13).normal(size=(60, 5))) < 0.5
    from fusion_tuner.analysis import cka_estimators as cka

    with pytest.raises(CKAError, match="RBF_MAX_N"):
        rbf_cka(np.zeros((cka.RBF_MAX_N + 1, 1)), np.zeros((cka.RBF_MAX_N + 1, 1)))


def test_at_report_sizes_biased_cka_is_high_for_unrelated_features_and_debiased_is_not() -> None:
    # 30 test crystals, 256-wide stages: the biased estimator reads ~0.9 for independent noise
    x, y = rng(0).normal(size=(30, 256)), rng(1).normal(size=(30, 256))
    assert linear_cka(x, y) > 0.85
    assert abs(linear_cka(x, y, debiased=True)) < 0.1


def test_stage_cka_pairs_same_named_stages_and_marks_constant_ones() -> None:
    from fusion_tuner.analysis.cka import stage_cka, within_cka

    g = rng(2).normal(size=(40, 16))
    a = {"graph": g, "fused": g @ rng(3).normal(size=(16, 8)), "text": np.ones((40, 4))}
    b = {"graph": g * 2.0, "fused": rng(4).normal(size=(40, 8)), "text": np.ones((40, 4))}
    out = stage_cka(a, b)
    assert list(out) == ["graph", "text", "fused"]  # the model's stage order
    assert out["graph"] == pytest.approx(1.0)
    assert abs(out["fused"]) < 0.15 and out["text"] is None  # constant: undefined
    within = within_cka(a, [("graph", "fused"), ("text", "fused"), ("graph", "absent")])
    assert set(within) == {"graph~fused", "text~fused"} and within["text~fused"] is None
    assert within["graph~fused"] > 0.3
