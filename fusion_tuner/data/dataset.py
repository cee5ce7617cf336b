"""PyG samples: one :class:`CrystalGraphData` per crystal (atom graph, line graph, text tokens).

Batching (``torch_geometric.loader.DataLoader``) concatenates atoms and bonds, offsets
``edge_index`` by the number of atoms and ``lg_edge_index`` by the number of *bonds* (its own
``__inc__``), and stacks ``input_ids`` / ``attention_mask`` into (B, max_length) tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from fusion_tuner.data.graphs import bond_cosines, line_graph
from fusion_tuner.data.store import GraphStore


class CrystalGraphData(Data):
    """A crystal as a PyG ``Data``.

    Attributes:
        z (LongTensor): (N,) atomic numbers.
        edge_index (LongTensor): (2, E) bonds ``src -> dst``; the model aggregates at ``dst``
            (``dataset.neighbor_strategy=k-nearest``: every bond in both directions; ``pure``:
            neighbour -> centre).
        bond_length (Tensor): (E,) Angstrom.
        lg_edge_index (LongTensor): (2, T) line-graph edges ``a -> b`` for bonds
            ``a = (u -> v)``, ``b = (v -> w)`` (DGL's ``line_graph(shared=True)`` pairs).
        angle_cos (Tensor): (T,) cosine of the bond angle at ``v`` of each line-graph edge,
            ``(-r_a) . r_b / (|r_a| |r_b|)`` with ``r = pos[dst] + offset - pos[src]``.
        input_ids (LongTensor): (1, L) token ids, padded to the dataset's max_length (absent
            in a graph-only dataset, ``text=none``).
        attention_mask (LongTensor): (1, L) 1 for real tokens (absent likewise).
        y (Tensor): (1,) target in its own units.
        sample_id (str): the crystal's id (a list of ids after batching).
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "lg_edge_index":
            return self.edge_index.size(1)
        if key in ("input_ids", "attention_mask"):
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in ("input_ids", "attention_mask"):
            return 0  # stored as (1, L): concatenating on dim 0 stacks to (B, L)
        return super().__cat_dim__(key, value, *args, **kwargs)


class CrystalDataset(torch.utils.data.Dataset):
    """Samples drawn from the graph store and a token-cache entry, for a subset of rows.

    Args:
        graphs (GraphStore): the featurised crystals.
        tokens (dict | None): ``token_ids``/``token_ptr`` aligned with ``graphs.ids``; None for
            graph-only samples (``text=none``), which then carry no token tensors.
        rows (list[int]): which crystals of the entry this dataset serves.
        max_length (int): padded token length.
        pad_token_id (int): id used for padding.
    """

    def __init__(
        self,
        graphs: GraphStore,
        tokens: dict[str, torch.Tensor] | None,
        rows: list[int],
        max_length: int,
        pad_token_id: int,
    ) -> None:
        self.graphs = graphs
        self.tokens = tokens
        self.rows = list(rows)
        self.max_length = max_length
        self.pad_token_id = pad_token_id

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [self.graphs.ids[r] for r in self.rows]

    @property
    def targets(self) -> torch.Tensor:
        return self.graphs.targets[self.rows]

    def __getitem__(self, index: int) -> CrystalGraphData:
        row = self.rows[index]
        g = self.graphs
        n_atoms = g.num_atoms(row)
        edge_index, r = g.bonds(row)
        lg = line_graph(edge_index, n_atoms)
        text: dict[str, torch.Tensor] = {}
        if self.tokens is not None:
            t0, t1 = int(self.tokens["token_ptr"][row]), int(self.tokens["token_ptr"][row + 1])
            ids = torch.full((1, self.max_length), self.pad_token_id, dtype=torch.long)
            ids[0, : t1 - t0] = self.tokens["token_ids"][t0:t1].long()
            mask = torch.zeros((1, self.max_length), dtype=torch.long)
            mask[0, : t1 - t0] = 1
            text = {"input_ids": ids, "attention_mask": mask}
        return CrystalGraphData(
            z=g.atomic_numbers(row).long(),
            edge_index=torch.from_numpy(edge_index),
            bond_length=torch.from_numpy(np.linalg.norm(r, axis=1)),
            lg_edge_index=torch.from_numpy(lg),
            angle_cos=torch.from_numpy(bond_cosines(r.astype(np.float64), lg)),
            y=g.targets[row : row + 1].float(),
            sample_id=g.ids[row],
            num_nodes=n_atoms,
            **text,
        )
