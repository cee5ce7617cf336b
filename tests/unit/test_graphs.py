"""Periodic k-NN graphs, line graphs and bond cosines against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fusion_tuner.data.graphs import StructureError, bond_cosines, knn_graph, line_graph


def brute_force_neighbours(lattice, cart, cutoff, k):
    """Sorted distances of the k nearest neighbours of each atom, over a generous image box."""
    out = []
    shifts = np.array(list(itertools.product(range(-4, 5), repeat=3))) @ lattice
    for i in range(len(cart)):
        d = np.linalg.norm(cart[None, :, :] + shifts[:, None, :] - cart[i], axis=-1).ravel()
        d = np.sort(d[(d > 1e-4) & (d <= cutoff)])
        out.append(d[:k])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_matches_brute_force_on_random_triclinic_cells(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lattice = np.diag(rng.uniform(3.0, 5.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3))
    cart = rng.uniform(0, 1, (4, 3)) @ lattice
    edge_index, r = knn_graph(lattice, cart, cutoff=8.0, max_neighbors=12)
    expected = brute_force_neighbours(lattice, cart, 8.0, 12)
    lengths = np.linalg.norm(r, axis=1)
    for i in range(len(cart)):
        mine = np.sort(lengths[edge_index[1] == i])
        np.testing.assert_allclose(mine, expected[i], atol=1e-9)
    # r points from the centre (row 1) to the neighbour image (row 0)
    assert edge_index.shape == (2, 48)
    assert np.bincount(edge_index[1]).tolist() == [12, 12, 12, 12]


def test_isolated_atoms_keep_fewer_bonds_without_crashing() -> None:
    lattice = np.eye(3) * 30.0
    cart = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [15.0, 15.0, 15.0]])
    edge_index, r = knn_graph(lattice, cart, cutoff=5.0, max_neighbors=12)
    assert edge_index.T.tolist() == [[1, 0], [0, 1]]
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), [1.5, 1.5])


@pytest.mark.parametrize(
    ("lattice", "cart", "reason"),
    [
        (np.eye(3) * 4, np.array([[0, 0, 0], [0.01, 0, 0]]), "overlap"),
        (np.zeros((3, 3)), np.zeros((1, 3)), "degenerate"),
        (np.eye(3) * 4, np.array([[np.nan, 0, 0]]), "NaN"),
    ],
)
def test_broken_structures_raise_structure_error(lattice, cart, reason) -> None:
    with pytest.raises(StructureError, match=reason):
        knn_graph(lattice, cart, 8.0, 12)


def test_line_graph_pairs_incoming_with_outgoing_bonds_and_angles() -> None:
    # three atoms in a row in a big box: 0 -- 1 -- 2, bonds of 1.0 A, k = 2
    lattice = np.eye(3) * 50.0
    cart = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    edge_index, r = knn_graph(lattice, cart, cutoff=2.5, max_neighbors=2)
    lg = line_graph(edge_index, 3)
    src, dst = edge_index
    # every line-graph edge a -> b has target(a) == source(b)
    assert np.all(dst[lg[0]] == src[lg[1]])
    # T = sum over bonds of the in-degree of their source atom
    assert lg.shape[1] == sum(np.sum(dst == s) for s in src)
    cos = bond_cosines(r, lg)
    pairs = {
        (int(src[a]), int(dst[a]), int(dst[b])): float(c) for a, b, c in zip(*lg, cos, strict=True)
    }
    assert pairs[(0, 1, 2)] == pytest.approx(-1.0)  # straight angle at atom 1
    assert pairs[(2, 1, 0)] == pytest.approx(-1.0)
    assert pairs[(0, 1, 0)] == pytest.approx(1.0)  # backtracking, as ALIGNN's line graph has
    assert pairs[(2, 0, 1)] == pytest.approx(1.0)  # 2 -> 0 (at 2 A) then 0 -> 1: same direction


def test_right_angle_cosine_is_zero() -> None:
    r = np.array([[1.0, 0, 0], [0, -1.0, 0]])  # a = (j -> i) along +x, b = (i -> m) with -r_b = +y
    assert bond_cosines(r, np.array([[0], [1]]))[0] == pytest.approx(0.0, abs=1e-7)
