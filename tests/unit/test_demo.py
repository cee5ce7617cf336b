"""The embedded demo data: deterministic, varied, learnable but not from composition alone."""

from __future__ import annotations

import numpy as np

from fusion_tuner.data.demo import ELEMENTS, PROTOTYPES, generate_demo, synthetic_gap


def test_demo_is_deterministic_and_varied() -> None:
    a, b = generate_demo(600, seed=0), generate_demo(600, seed=0)
    assert [c.target for c in a] == [c.target for c in b]
    np.testing.assert_array_equal(a[17].cart, b[17].cart)
    assert len({c.id for c in a}) == 600
    assert len(PROTOTYPES) >= 8
    families = {c.text.split(" with the ")[1].split(" structure")[0] for c in a}
    assert len(families) == len(PROTOTYPES)
    assert generate_demo(50, seed=1)[0].target != a[0].target


def test_target_depends_on_geometry_not_only_composition() -> None:
    base = synthetic_gap(dx=2.0, cn=6, strain=1.0, displacement=0.0)
    assert synthetic_gap(2.0, 6, 1.05, 0.0) < base  # stretched bonds: smaller gap
    assert synthetic_gap(2.0, 4, 1.0, 0.0) > base  # lower coordination: larger gap
    assert synthetic_gap(0.0, 12, 1.0, 0.0) == 0.0  # elements are metals


def test_linear_fit_on_composition_does_not_solve_the_target() -> None:
    crystals = generate_demo(600, seed=0)
    y = np.array([c.target for c in crystals])
    elements = sorted(ELEMENTS)
    x = np.zeros((len(crystals), len(elements) + 1))
    x[:, -1] = 1.0
    for i, c in enumerate(crystals):
        for el in c.elements:
            x[i, elements.index(el)] += 1.0 / len(c.elements)
    train, test = slice(0, 480), slice(480, None)
    coef, *_ = np.linalg.lstsq(x[train], y[train], rcond=None)
    mae = np.abs(x[test] @ coef - y[test]).mean()
    mad = np.abs(y[test] - y[train].mean()).mean()
    assert mae > 0.6 * mad, (mae, mad)  # composition alone stays above the training test's bar
    assert y.std() > 1.0 and (y <= 0.05).mean() < 0.35  # a spread target, metals a minority
