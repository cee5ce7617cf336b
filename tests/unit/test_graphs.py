"""Periodic neighbour graphs (k-nearest and pure), line graphs and bond cosines.

Synthetic structures with known answers; the comparison with upstream ALIGNN on real structures
is in test_alignn_reference.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fusion_tuner import compose_config, config
from fusion_tuner.data import graphs
from fusion_tuner.data.graphs import (
    NEIGHBOR_STRATEGIES,
    StructureError,
    bond_cosines,
    crystal_graph,
    line_graph,
)
from fusion_tuner.errors import ConfigError


def brute_force_distances(lattice, cart, i, reach=4):
    """Sorted distances from atom ``i`` to every other site over a generous image box."""
    shifts = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3))) @ lattice
    d = np.linalg.norm(cart[None, :, :] + shifts[:, None, :] - cart[i], axis=-1).ravel()
    return np.sort(d[d > 1e-6])


def edge_rows(edge_index, r, lattice, cart):
    """Sorted (src, dst, image shift) rows; asserts r = pos[dst] + shift @ lattice - pos[src]."""
    src, dst = edge_index
    base = cart[dst] - cart[src]
    shift = np.rint((r - base) @ np.linalg.inv(lattice)).astype(np.int64)
    np.testing.assert_allclose(base + shift @ lattice, r, atol=1e-9)
    rows = np.concatenate([src[:, None], dst[:, None], shift], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def random_cell(seed: int, n: int = 4):
    rng = np.random.default_rng(seed)
    lattice = np.diag(rng.uniform(3.0, 5.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3))
    return lattice, rng.uniform(0, 1, (n, 3)) @ lattice


def test_strategies_are_the_configs_choices() -> None:
    assert config.NEIGHBOR_STRATEGIES == NEIGHBOR_STRATEGIES == ("k-nearest", "pure")
    assert config.DatasetConfig().neighbor_strategy == "k-nearest"
    with pytest.raises(ValueError, match="unknown neighbor strategy 'radius'"):
        crystal_graph(np.eye(3) * 4, np.zeros((1, 3)), 8.0, 12, "radius")
    with pytest.raises(
        ConfigError, match=r"dataset\.neighbor_strategy='radius' is not one of k-nearest, pure"
    ):
        compose_config(["dataset.neighbor_strategy=radius"])


# ------------------------------------------------------------------------------- k-nearest
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_nearest_keeps_each_atoms_shell_and_adds_every_reverse(seed: int) -> None:
    lattice, cart = random_cell(seed)
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12)
    rows = edge_rows(edge_index, r, lattice, cart)
    # undirected: the reverse of every edge (dst, src, -shift) is there as often as the edge
    reverse = np.concatenate([rows[:, [1, 0]], -rows[:, 2:]], axis=1)
    np.testing.assert_array_equal(reverse[np.lexsort(reverse.T[::-1])], rows)
    length = np.linalg.norm(r, axis=1)
    for i in range(len(cart)):
        d = brute_force_distances(lattice, cart, i)
        shell = d[d <= d[11] + 1e-9]  # everything out to the 12th neighbour
        mine = np.sort(length[edge_index[0] == i])
        # i's own shell is among its bonds; the rest are bonds that other atoms chose
        assert np.isin(np.round(shell, 9), np.round(mine, 9)).all()
        assert len(mine) >= len(shell) >= 12


def test_k_nearest_keeps_the_whole_tied_shell_and_doubles_self_image_bonds() -> None:
    # CsCl-like: A at the corner, B at the body centre of a 3 A cube. Each atom: 8 unlike
    # neighbours at 2.598 A, then 6 images of itself at 3 A -> the 12th neighbour is in that
    # shell of 6, all 14 are kept.
    lattice = np.eye(3) * 3.0
    cart = np.array([[0.0, 0, 0], [1.5, 1.5, 1.5]])
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12)
    rows = edge_rows(edge_index, r, lattice, cart)
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    # 8 A<->B bonds once each way; each atom's 6 self-image bonds twice (upstream's canonisation)
    assert len(rows) == 2 * 8 + 2 * 6 * 2 == 40
    assert sorted(counts.tolist()) == [1] * 16 + [2] * 12
    assert (uniq[counts == 2][:, 0] == uniq[counts == 2][:, 1]).all()
    assert np.bincount(edge_index[1]).tolist() == [20, 20]
    assert line_graph(edge_index, 2).shape[1] == 40 * 20  # every atom sends 20 bonds


def test_k_nearest_grows_the_cutoff_until_every_atom_has_k_neighbours() -> None:
    # one atom in a 20 A cube: nothing within 8 A, 6 images within 20 A (still < 12), and
    # 6 + 12 within 40 A: the 12th neighbour is at 20 sqrt(2), a shell of 12 face diagonals
    lattice = np.eye(3) * 20.0
    _, r = crystal_graph(lattice, np.zeros((1, 3)), 8.0, 12)
    length = np.linalg.norm(r, axis=1)
    # 18 self-image bonds (images +n and -n are separate bonds), each added in both directions:
    # 18 distinct directed edges, each twice
    assert len(r) == 2 * 18
    assert np.unique(r.round(9), axis=0, return_counts=True)[1].tolist() == [2] * 18
    np.testing.assert_allclose(np.unique(length.round(9)), [20.0, 20.0 * np.sqrt(2)])


def test_two_distant_atoms_in_a_big_cell_are_connected_or_refused_with_reason() -> None:
    # the fault drill's case: a 30 A cell with two atoms 26 A apart
    lattice = np.eye(3) * 30.0
    cart = np.array([[0.0, 0, 0], [15.0, 15.0, 15.0]])
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12)  # grows 8 -> 30 A
    assert np.bincount(edge_index[1]).tolist() == [20, 20]  # as the CsCl case, scaled
    assert np.linalg.norm(r, axis=1).max() == pytest.approx(30.0)
    with pytest.raises(StructureError, match=r"2 atom\(s\) \(site 0 first\) have no neighbour"):
        crystal_graph(lattice, cart, 8.0, 12, "pure")


def test_a_radius_past_the_image_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphs, "MAX_IMAGE_SITES", 20)
    # 40 A in a 20 A cube: a box of 5^3 = 125 shifts, 33 of them within reach after pruning
    with pytest.raises(StructureError, match="radius of 40 A would enumerate 125 periodic image"):
        crystal_graph(np.eye(3) * 20.0, np.zeros((1, 3)), 8.0, 12)
    # two atoms 15.6 A apart in a 10 A cube: all 27 shifts of the box stay after pruning
    monkeypatch.setattr(graphs, "MAX_IMAGE_SITES", 30)
    with pytest.raises(StructureError, match="radius of 8 A would enumerate 54 periodic image"):
        crystal_graph(np.eye(3) * 10.0, np.array([[0.0, 0, 0], [9.0, 9.0, 9.0]]), 8.0, 12)
    # a cell that would need an absurd radius fails fast instead of exhausting memory
    monkeypatch.undo()
    with pytest.raises(StructureError, match="too sparse"):
        crystal_graph(np.diag([2.0, 2.0, 1e9]), np.zeros((1, 3)), 8.0, 400)


# ------------------------------------------------------------------------------------ pure
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_gives_each_atom_its_k_nearest_as_incoming_edges(seed: int) -> None:
    lattice, cart = random_cell(seed)
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12, "pure")
    edge_rows(edge_index, r, lattice, cart)  # r = pos[dst] + offset - pos[src]
    lengths = np.linalg.norm(r, axis=1)
    for i in range(len(cart)):
        mine = lengths[edge_index[1] == i]
        np.testing.assert_allclose(mine, brute_force_distances(lattice, cart, i)[:12], atol=1e-9)
    assert np.bincount(edge_index[1]).tolist() == [12, 12, 12, 12]


def test_pure_cuts_a_tied_shell_by_bond_vector_not_atom_order() -> None:
    lattice = np.eye(3) * 3.0
    cart = np.array([[0.0, 0, 0], [1.5, 1.5, 1.5]])
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12, "pure")
    assert np.bincount(edge_index[1]).tolist() == [12, 12]
    # of the 6 self images at 3 A, atom 0 keeps the 4 whose vector (centre -> neighbour = -r)
    # comes first by x, then y, then z
    own = -r[(edge_index[0] == 0) & (edge_index[1] == 0)]
    expected = [[-3.0, 0, 0], [0, -3.0, 0], [0, 0, -3.0], [0, 0, 3.0]]
    np.testing.assert_allclose(own, expected)


def test_pure_keeps_fewer_bonds_where_fewer_neighbours_lie_within_the_cutoff() -> None:
    lattice = np.eye(3) * 30.0
    cart = np.array([[0.0, 0, 0], [1.5, 0, 0], [3.0, 0, 0]])
    edge_index, r = crystal_graph(lattice, cart, 2.0, 12, "pure")
    assert edge_index.T.tolist() == [[1, 0], [0, 1], [2, 1], [1, 2]]
    np.testing.assert_allclose(r, [[-1.5, 0, 0], [1.5, 0, 0], [-1.5, 0, 0], [1.5, 0, 0]])


# --------------------------------------------------------------------------------- both
@pytest.mark.parametrize("strategy", NEIGHBOR_STRATEGIES)
@pytest.mark.parametrize(
    ("cart", "message"),
    [
        ([[1, 1, 1], [1, 1, 1]], r"sites 0 and 1 coincide \(same position\)"),
        # fractional 0 and 1 are the same site of the crystal
        ([[0, 0, 0], [4, 0, 0]], r"sites 0 and 1 \(its periodic image \(-1, 0, 0\)\) coincide"),
        ([[0, 0, 0], [0.1, 0, 0]], r"atoms overlap: sites 0 and 1 are 0.100 A apart"),
    ],
)
def test_coincident_or_overlapping_sites_are_refused_by_index(strategy, cart, message) -> None:
    cart = np.array([[2.0, 2, 2], *cart], dtype=float)[1:]
    with pytest.raises(StructureError, match=message):
        crystal_graph(np.eye(3) * 4.0, cart, 8.0, 12, strategy)


@pytest.mark.parametrize("strategy", NEIGHBOR_STRATEGIES)
@pytest.mark.parametrize(
    ("lattice", "cart", "reason"),
    [
        (np.zeros((3, 3)), np.zeros((1, 3)), "degenerate"),
        (np.eye(3) * 4, np.array([[np.nan, 0, 0]]), "NaN"),
        (np.eye(3) * 4, np.zeros((0, 3)), "no atoms"),
    ],
)
def test_broken_structures_raise_structure_error(strategy, lattice, cart, reason) -> None:
    with pytest.raises(StructureError, match=reason):
        crystal_graph(lattice, cart, 8.0, 12, strategy)


@pytest.mark.parametrize("strategy", NEIGHBOR_STRATEGIES)
def test_graph_does_not_depend_on_atom_order_in_a_tied_structure(strategy: str) -> None:
    # rock salt, conventional cell: 6 unlike neighbours at 2.5 A, then 12 like at 3.54 A, so
    # every atom's 12th neighbour lies inside a shell of 12 (k-nearest keeps 18, pure cuts it)
    a = 5.0
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    cart = np.concatenate([fcc, fcc + np.array([0.5, 0, 0])]) * a
    lattice = np.eye(3) * a
    edge_index, r = crystal_graph(lattice, cart, 8.0, 12, strategy)
    rows = edge_rows(edge_index, r, lattice, cart)
    cos = np.sort(bond_cosines(r, line_graph(edge_index, 8)))
    assert np.bincount(edge_index[1]).tolist() == [18 if strategy == "k-nearest" else 12] * 8
    for perm in (np.arange(8)[::-1], np.random.default_rng(1).permutation(8)):
        ei_p, r_p = crystal_graph(lattice, cart[perm], 8.0, 12, strategy)
        np.testing.assert_array_equal(edge_rows(perm[ei_p], r_p, lattice, cart), rows)
        np.testing.assert_array_equal(np.sort(bond_cosines(r_p, line_graph(ei_p, 8))), cos)


# ---------------------------------------------------------------------- line graph, cosines
def test_line_graph_pairs_incoming_with_outgoing_bonds_and_angles() -> None:
    # three atoms in a row in a big box: 0 -- 1 -- 2, bonds of 1.0 A, k = 2
    lattice = np.eye(3) * 50.0
    cart = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    edge_index, r = crystal_graph(lattice, cart, 2.5, 2, "pure")
    lg = line_graph(edge_index, 3)
    src, dst = edge_index
    # every line-graph edge a -> b has dst(a) == src(b)
    assert np.all(dst[lg[0]] == src[lg[1]])
    # T = sum over bonds a of the out-degree of dst(a)
    assert lg.shape[1] == sum(np.sum(src == d) for d in dst)
    cos = bond_cosines(r, lg)
    pairs = {
        (int(src[a]), int(dst[a]), int(dst[b])): float(c) for a, b, c in zip(*lg, cos, strict=True)
    }
    assert pairs[(0, 1, 2)] == pytest.approx(-1.0)  # straight angle at atom 1
    assert pairs[(2, 1, 0)] == pytest.approx(-1.0)
    assert pairs[(0, 1, 0)] == pytest.approx(1.0)  # backtracking, as DGL's line graph has
    assert pairs[(2, 0, 1)] == pytest.approx(1.0)  # 2 -> 0 (at 2 A) then 0 -> 1: same direction


def test_cosine_is_upstreams_rule() -> None:
    # a = (u -> v) with r_a = v - u, b = (v -> w) with r_b = w - v; cos = (-r_a) . r_b / norms
    r = np.array([[-1.0, 0, 0], [0, 2.0, 0], [3.0, 4.0, 0]])
    lg = np.array([[0, 0, 0], [0, 1, 2]])
    np.testing.assert_allclose(bond_cosines(r, lg), [-1.0, 0.0, 0.6], atol=1e-7)


def test_jarvis_records_give_the_positions_jarvis_tools_and_upstream_use() -> None:
    from jarvis.core.atoms import Atoms

    from fusion_tuner.data.records import crystal_from_jarvis_atoms

    # jarvis' Lattice rounds to 1e-5 A for positions; a lattice with more digits shows it
    record = {
        "lattice_mat": [
            [3.1267412, 0.0, 0.0],
            [-1.5633706, 2.707837310259441, 0.0],
            [0, 0, 3.4844],
        ],
        "coords": [[0.0, 0.0, 0.0], [1 / 3, 2 / 3, 0.49999983], [2 / 3, 1 / 3, 0.49999983]],
        "elements": ["Sc", "B", "B"],
        "cartesian": False,
        "props": ["", "", ""],
    }
    crystal = crystal_from_jarvis_atoms("JVASP-1378", record, 0.0)
    np.testing.assert_array_equal(crystal.cart, Atoms.from_dict(record).cart_coords)
    np.testing.assert_array_equal(crystal.lattice, record["lattice_mat"])


def test_an_atom_no_bond_reaches_within_50_angstrom_is_refused() -> None:
    # issue 26, item 17: an atom 1e6 A from everything used to get a 1e6 A bond
    lattice = np.eye(3) * 1e6
    cart = np.array([[0.0, 0, 0], [2.8, 0, 0], [0, 2.8, 0], [5e5, 5e5, 5e5]])
    with pytest.raises(StructureError, match=r"1 atom\(s\) \(site 3 first, nearest neighbour"):
        crystal_graph(lattice, cart, 8.0, 12)
    # one atom alone in a 60 A box: its nearest neighbour is its own image, 60 A away
    with pytest.raises(StructureError, match="no neighbour within 50 A"):
        crystal_graph(np.eye(3) * 60.0, np.zeros((1, 3)), 8.0, 12)
    # a cutoff above 50 A raises the limit with it
    edge_index, _ = crystal_graph(np.eye(3) * 60.0, np.zeros((1, 3)), 61.0, 6)
    assert edge_index.shape[1] > 0
