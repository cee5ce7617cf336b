"""The loader's vectorised batches: equal to PyG's per-crystal batching, from precomputed arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from fusion_tuner.data.graphs import bond_cosines, line_graph
from fusion_tuner.data.store import line_graph_targets
from tests.conftest import compose

DATA = ("dataset.demo_size=40", "text.max_length=48")


@pytest.fixture(scope="module")
def dm(tmp_path_factory):
    from fusion_tuner import build_datamodule

    return build_datamodule(compose(*DATA, cache=tmp_path_factory.mktemp("loader_cache")))


def _assert_same_batch(fast: Batch, slow: Batch) -> None:
    assert sorted(fast.keys()) == sorted(slow.keys())
    for key, b in slow:  # a Data iterates over (key, value)
        a = fast[key]
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype, key
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
        else:
            assert a == b, key
    assert fast.num_graphs == slow.num_graphs
    for k in slow._slice_dict:
        torch.testing.assert_close(fast._slice_dict[k], slow._slice_dict[k], msg=k)


def test_loader_batch_equals_pyg_batching_of_single_samples(dm) -> None:
    order = dm.splits["train"][::-1][:7]
    fast = next(iter(dm.loader(order, batch_size=7)))
    ds = dm.dataset(order)
    slow = Batch.from_data_list([ds[i] for i in range(len(ds))])
    _assert_same_batch(fast, slow)
    # and back: the batch splits into the very samples it was made of
    again = fast.to_data_list()
    assert [d.sample_id for d in again] == order
    torch.testing.assert_close(again[3].lg_edge_index, ds[3].lg_edge_index)


def test_stored_line_graph_and_cosines_equal_their_derivation(dm) -> None:
    g = dm.graphs
    for row in range(len(g)):
        edge_index, r = g.bonds(row)
        lg = line_graph(edge_index, g.num_atoms(row))
        stored, cos = g.line_graph(row)
        np.testing.assert_array_equal(stored, lg)
        np.testing.assert_array_equal(cos, bond_cosines(r.astype(np.float64), lg))
        e0, e1 = int(g.edge_ptr[row]), int(g.edge_ptr[row + 1])
        np.testing.assert_array_equal(g.bond_length[e0:e1].numpy(), np.linalg.norm(r, axis=1))


def test_line_graph_targets_of_a_disjoint_union_are_the_offset_targets() -> None:
    rng = np.random.default_rng(0)
    parts, atoms, expected, bonds = [], 0, [], 0
    for n in (1, 3, 5):
        e = rng.integers(0, n, size=(2, 4 * n))
        expected.append(line_graph(e, n)[1] + bonds)
        parts.append(e + atoms)
        atoms, bonds = atoms + n, bonds + e.shape[1]
    union = np.concatenate(parts, axis=1)
    np.testing.assert_array_equal(line_graph_targets(union, atoms), np.concatenate(expected))


def test_loader_workers_persist_and_pin_only_when_asked(dm) -> None:
    loader = dm.loader("val", num_workers=1)
    assert loader.persistent_workers and not loader.pin_memory
    first = [b.sample_id for b in loader]
    assert [b.sample_id for b in loader] == first  # the same workers serve a second epoch
    assert not dm.loader("val", num_workers=0).persistent_workers
    dm.pin_memory = True
    try:
        assert dm.loader("val").pin_memory
    finally:
        dm.pin_memory = False
