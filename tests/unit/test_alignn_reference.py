"""fusion_tuner's graphs against upstream ALIGNN's on the 50 labelled sample structures.

The reference is ``tests/assets/alignn_reference/reference.npz``, written once from upstream
(alignn 2026.8.11) by ``make_reference.py`` beside it; with alignn installed the fixture itself
is also checked against live upstream. The structures are the bundled sample (sample://jarvis_dft3d_alignn_sample50).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner.data.graphs import bond_cosines, crystal_graph, line_graph
from fusion_tuner.data.records import Crystal, load_folder

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "alignn_reference"
COS_TOLERANCE = 10  # in units of 1e-6: cosines agree within 1e-5


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_reference", ASSETS / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference_module()


@functools.lru_cache(maxsize=1)
def _fixture() -> tuple[dict, ...]:
    return tuple(REF.load(ASSETS / "reference.npz"))


@functools.lru_cache(maxsize=1)
def _crystals(root: Path) -> dict[str, Crystal]:
    crystals, report = load_folder(root, None)
    assert not report.unreadable
    return {c.id: c for c in crystals}


@pytest.fixture
def sample50(samples: Path) -> dict[str, Crystal]:
    return _crystals(samples / "jarvis_dft3d_alignn_sample50")


def ours(crystal: Crystal, strategy: str) -> dict[str, np.ndarray]:
    """Our graph in the fixture's representation (see make_reference.py)."""
    edge_index, r = crystal_graph(crystal.lattice, crystal.cart, 8.0, 12, strategy)
    r32 = r.astype(np.float32).astype(np.float64)  # as cached
    cos = REF.quantised(bond_cosines(r32, line_graph(edge_index, len(crystal.cart))))
    if strategy == "k-nearest":
        return {
            "kn_edges": REF.edge_rows(
                edge_index[0], edge_index[1], r, crystal.lattice, crystal.cart
            ),
            "kn_cos": cos,
        }
    centre, length = edge_index[1], np.linalg.norm(r, axis=1)  # pure: edges neighbour -> centre
    return {
        "pure_centre": np.sort(centre),
        "pure_length": REF.lengths_by_centre(centre, length),
        "pure_cos": cos,
    }


def test_k_nearest_is_upstreams_default_graph(sample50: dict[str, Crystal]) -> None:
    totals = {"edges": 0, "duplicates": 0, "line_graph": 0}
    for ref in _fixture():
        mine = ours(sample50[ref["name"]], "k-nearest")
        # the same directed edges (src, dst, image shift), duplicates included; r is checked
        # to be pos[dst] + shift @ lattice - pos[src] within 1e-5 A by edge_rows
        np.testing.assert_array_equal(mine["kn_edges"], ref["kn_edges"], err_msg=ref["name"])
        assert mine["kn_cos"].shape == ref["kn_cos"].shape, ref["name"]
        assert np.abs(mine["kn_cos"] - ref["kn_cos"]).max() <= COS_TOLERANCE, ref["name"]
        _, counts = np.unique(ref["kn_edges"], axis=0, return_counts=True)
        totals["edges"] += len(ref["kn_edges"])
        totals["duplicates"] += int((counts - 1).sum())
        totals["line_graph"] += len(ref["kn_cos"])
    assert totals == {"edges": 9658, "duplicates": 326, "line_graph": 130990}


def test_k_nearest_duplicates_are_self_image_bonds_only(sample50: dict[str, Crystal]) -> None:
    for ref in _fixture():
        rows, counts = np.unique(ref["kn_edges"], axis=0, return_counts=True)
        assert set(counts.tolist()) <= {1, 2}
        dup = rows[counts == 2]
        assert (dup[:, 0] == dup[:, 1]).all() and (dup[:, 2:] != 0).any(axis=1).all()


def test_pure_is_upstreams_pure_torch_graph_reversed(sample50: dict[str, Crystal]) -> None:
    """Same bonds per centre atom (lengths), same line-graph size; ties at the 12th neighbour may
    be cut differently (upstream cuts them by sort order, here by bond vector)."""
    edges = line_edges = 0
    for ref in _fixture():
        mine = ours(sample50[ref["name"]], "pure")
        np.testing.assert_array_equal(mine["pure_centre"], ref["pure_centre"], err_msg=ref["name"])
        np.testing.assert_allclose(mine["pure_length"], ref["pure_length"], atol=1e-5)
        assert mine["pure_cos"].shape == ref["pure_cos"].shape, ref["name"]
        edges += len(ref["pure_length"])
        line_edges += len(ref["pure_cos"])
    assert (edges, line_edges) == (8724, 104688)


def test_fixture_is_what_live_upstream_builds(samples: Path) -> None:
    pytest.importorskip(
        "alignn.graphs", reason="upstream ALIGNN not installed (pip install alignn)"
    )
    from jarvis.io.vasp.inputs import Poscar

    folder = samples / "jarvis_dft3d_alignn_sample50"
    for ref in _fixture():
        atoms = Poscar.from_file(str(folder / "structures" / ref["name"])).atoms
        live = REF.upstream_default(atoms) | {
            f"pure_{k}": v for k, v in REF.upstream_pure(atoms).items()
        }
        np.testing.assert_array_equal(live["edges"], ref["kn_edges"], err_msg=ref["name"])
        np.testing.assert_array_equal(live["cos"], ref["kn_cos"], err_msg=ref["name"])
        np.testing.assert_array_equal(live["pure_centre"], ref["pure_centre"])
        np.testing.assert_allclose(live["pure_length"], ref["pure_length"], atol=1e-6)
        assert live["pure_cos"].shape == ref["pure_cos"].shape


def _tied(crystal: Crystal, k: int = 12) -> bool:
    """Some atom's k-th and (k+1)-th nearest neighbours are equally far (to 1e-4 A)."""
    edge_index, r = crystal_graph(crystal.lattice, crystal.cart, 8.0, 30, "pure")
    length = np.linalg.norm(r, axis=1)
    for i in range(len(crystal.cart)):
        d = np.sort(length[edge_index[1] == i])
        if len(d) > k and d[k] - d[k - 1] < 1e-4:
            return True
    return False


def permuted(crystal: Crystal, perm: np.ndarray) -> Crystal:
    """The same crystal with atom ``a`` of the result being atom ``perm[a]`` of ``crystal``."""
    return Crystal(
        crystal.id, crystal.lattice, crystal.cart[perm], [crystal.elements[p] for p in perm], 0.0
    )


def graph_rows(crystal: Crystal, strategy: str, perm: np.ndarray | None = None) -> tuple:
    """Edge rows (src, dst, shift) in original atom numbering, and sorted quantised cosines."""
    c = crystal if perm is None else permuted(crystal, perm)
    edge_index, r = crystal_graph(c.lattice, c.cart, 8.0, 12, strategy)
    cos = REF.quantised(bond_cosines(r, line_graph(edge_index, len(c.cart))))
    if perm is not None:
        edge_index = perm[edge_index]
    return REF.edge_rows(edge_index[0], edge_index[1], r, crystal.lattice, crystal.cart), cos


@pytest.mark.parametrize("strategy", ["k-nearest", "pure"])
def test_graphs_of_tied_structures_do_not_depend_on_atom_order(
    sample50: dict[str, Crystal], strategy: str
) -> None:
    tied = [c for c in sample50.values() if _tied(c)]
    assert len(tied) == 25  # the structures with a tied 12th/13th neighbour
    rng = np.random.default_rng(0)
    for crystal in tied:
        rows, cos = graph_rows(crystal, strategy)
        n = len(crystal.cart)
        for perm in (np.arange(n)[::-1], rng.permutation(n)):
            rows_p, cos_p = graph_rows(crystal, strategy, perm)
            # each atom has the same neighbours (same images) under any numbering
            np.testing.assert_array_equal(rows_p, rows, err_msg=crystal.id)
            np.testing.assert_array_equal(cos_p, cos, err_msg=crystal.id)
