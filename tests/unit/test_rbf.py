"""The Gaussian RBF expansions are upstream ALIGNN's: gamma = 1 / (mean spacing of the centres)."""

from __future__ import annotations

import math

import pytest
import torch

from fusion_tuner.models.alignn import RBFExpansion


def test_bond_length_expansion_is_upstreams() -> None:
    # 80 centres over [0, 8] A: spacing 8/79, gamma = 79/8 = 9.875 (not 1/spacing^2 = 97.5)
    rbf = RBFExpansion(0.0, 8.0, 80)
    assert rbf.gamma == pytest.approx(9.875, rel=1e-6)
    out = rbf(torch.tensor([1.0, 2.5]))  # (2, 80)
    assert out.shape == (2, 80)
    # exp(-9.875 (x - c_k)^2) with c_k = 8 k / 79
    assert out[0, 10].item() == pytest.approx(0.998418973, rel=1e-6)  # c_10 = 1.01266
    assert out[0, 0].item() == pytest.approx(5.144486e-05, rel=1e-5)  # c_0 = 0, 1 A away
    assert out[1, 25].item() == pytest.approx(0.990159497, rel=1e-6)  # c_25 = 2.53165
    for k in (0, 9, 10, 11, 40, 79):
        expected = math.exp(-9.875 * (1.0 - 8.0 * k / 79) ** 2)
        assert out[0, k].item() == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_angle_cosine_expansion_is_upstreams() -> None:
    # 40 centres over [-1, 1]: spacing 2/39, gamma = 19.5 (not 380.25)
    rbf = RBFExpansion(-1.0, 1.0, 40)
    assert rbf.gamma == pytest.approx(19.5, rel=1e-6)
    out = rbf(torch.tensor([0.0, 0.5]))
    assert out[0, 19].item() == pytest.approx(0.987261320, rel=1e-6)  # c_19 = -1/39
    assert out[0, 20].item() == pytest.approx(0.987261320, rel=1e-6)  # c_20 = +1/39
    assert out[1, 29].item() == pytest.approx(0.996800003, rel=1e-6)  # c_29 = 19/39


def test_matches_alignn_itself_when_installed() -> None:
    upstream = pytest.importorskip("alignn.models.utils", reason="alignn not installed")
    x = torch.linspace(-0.5, 8.5, 301)
    for vmin, vmax, bins in [(0.0, 8.0, 80), (-1.0, 1.0, 40), (0.0, 5.0, 7)]:
        ours, theirs = RBFExpansion(vmin, vmax, bins), upstream.RBFExpansion(vmin, vmax, bins)
        assert ours.gamma == theirs.gamma
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
