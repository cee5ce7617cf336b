"""Exact batched indices of CrystalGraphData (PyG's test_pair_data_batching, for line graphs)."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from fusion_tuner.data.dataset import CrystalGraphData


def crystal(n_atoms: int, edges: list[list[int]], lg_edges: list[list[int]], cid: str, y: float):
    e = torch.tensor(edges).T
    lg = torch.tensor(lg_edges).T
    return CrystalGraphData(
        z=torch.arange(1, n_atoms + 1),
        edge_index=e,
        bond_length=torch.ones(e.size(1)),
        lg_edge_index=lg,
        angle_cos=torch.zeros(lg.size(1)),
        input_ids=torch.tensor([[2, 7, 3, 0]]),
        attention_mask=torch.tensor([[1, 1, 1, 0]]),
        y=torch.tensor([y]),
        sample_id=cid,
        num_nodes=n_atoms,
    )


def test_two_crystal_batch_offsets_atoms_bonds_and_line_graph_exactly() -> None:
    a = crystal(2, [[1, 0], [0, 1]], [[0, 1], [1, 0]], "A", 1.0)
    b = crystal(3, [[1, 0], [2, 1], [0, 2]], [[0, 2], [1, 0], [2, 1]], "B", 2.0)
    batch = Batch.from_data_list([a, b])
    # atom graph: crystal B's atoms start at 2
    assert batch.edge_index.tolist() == [[1, 0, 3, 4, 2], [0, 1, 2, 3, 4]]
    # line graph: crystal B's bonds start at 2 (the number of bonds in A), not at 2 atoms
    assert batch.lg_edge_index.tolist() == [[0, 1, 2, 3, 4], [1, 0, 4, 2, 3]]
    assert batch.batch.tolist() == [0, 0, 1, 1, 1]
    assert batch.input_ids.shape == (2, 4)
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0]]
    assert batch.y.tolist() == [1.0, 2.0]
    assert batch.sample_id == ["A", "B"]
    assert batch.z.tolist() == [1, 2, 1, 2, 3]


def test_line_graph_offsets_differ_from_atom_offsets() -> None:
    # three crystals where bonds != atoms, so an atom-count offset would be wrong
    a = crystal(1, [[0, 0]], [[0, 0]], "A", 0.0)  # 1 atom, 1 self-image bond
    b = crystal(2, [[1, 0], [0, 1], [1, 0]], [[0, 1], [2, 1]], "B", 0.0)
    c = crystal(1, [[0, 0]], [[0, 0]], "C", 0.0)
    batch = Batch.from_data_list([a, b, c])
    assert batch.lg_edge_index.tolist() == [[0, 1, 3, 4], [0, 2, 2, 4]]
    assert batch.edge_index.tolist() == [[0, 2, 1, 2, 3], [0, 1, 2, 1, 3]]
