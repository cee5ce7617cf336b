"""PyG samples: one :class:`CrystalGraphData` per crystal (atom graph, line graph, text tokens).

Batching (``torch_geometric.loader.DataLoader``) concatenates atoms and bonds, offsets
``edge_index`` by the number of atoms and ``lg_edge_index`` by the number of *bonds* (its own
``__inc__``), and stacks ``input_ids`` / ``attention_mask`` into (B, max_length) tensors.

:class:`BatchedCrystalDataset` (what ``CrystalDataModule.loader`` uses) builds the same batch
in one vectorised step per batch instead of one ``Data`` per crystal: every array a batch needs
is precomputed in the graph store, so a batch is a few slices, concatenations and offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from fusion_tuner.data.store import GraphStore, line_graph_targets


class TokenStates(Protocol):
    """Precomputed text-encoder states per crystal row (``data/text_states.py``)."""

    def gather(self, rows: Sequence[int]) -> torch.Tensor:
        """(sum of the rows' token counts, D) float16 states of ``rows``, concatenated."""
        ...


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
        text_states (HalfTensor, optional): (L_real, D) the text encoder's stored states of
            the real tokens (when a text-state store is attached; concatenated by batching).
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


def _concat(array: torch.Tensor, ptr: np.ndarray, rows: np.ndarray, axis: int = 0) -> np.ndarray:
    """The slices ``ptr[r]:ptr[r+1]`` along ``axis`` of ``array`` for ``rows``, concatenated."""
    a = array.numpy()
    if axis == 1:
        return np.concatenate([a[:, ptr[r] : ptr[r + 1]] for r in rows], axis=1)
    return np.concatenate([a[ptr[r] : ptr[r + 1]] for r in rows])


class CrystalDataset(torch.utils.data.Dataset):
    """Samples drawn from the graph store and a token-cache entry, for a subset of rows.

    Args:
        graphs (GraphStore): the featurised crystals.
        tokens (dict | None): ``token_ids``/``token_ptr`` aligned with ``graphs.ids``; None for
            graph-only samples (``text=none``), which then carry no token tensors.
        rows (list[int]): which crystals of the entry this dataset serves.
        max_length (int): padded token length.
        pad_token_id (int): id used for padding.
        text_states (TokenStates, optional): stored text-encoder states per row; when given,
            every sample carries its ``text_states``.
    """

    def __init__(
        self,
        graphs: GraphStore,
        tokens: dict[str, torch.Tensor] | None,
        rows: list[int],
        max_length: int,
        pad_token_id: int,
        text_states: TokenStates | None = None,
    ) -> None:
        self.graphs = graphs
        self.tokens = tokens
        self.rows = list(rows)
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.text_states = text_states

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
        e0, e1 = int(g.edge_ptr[row]), int(g.edge_ptr[row + 1])
        lg, cos = g.line_graph(row)
        extra: dict[str, torch.Tensor] = {}
        if self.tokens is not None:  # absent in a graph-only dataset (text=none)
            t0, t1 = int(self.tokens["token_ptr"][row]), int(self.tokens["token_ptr"][row + 1])
            ids = torch.full((1, self.max_length), self.pad_token_id, dtype=torch.long)
            ids[0, : t1 - t0] = self.tokens["token_ids"][t0:t1].long()
            mask = torch.zeros((1, self.max_length), dtype=torch.long)
            mask[0, : t1 - t0] = 1
            extra = {"input_ids": ids, "attention_mask": mask}
        if self.text_states is not None:
            extra["text_states"] = self.text_states.gather([row])
        return CrystalGraphData(
            z=g.atomic_numbers(row).long(),
            edge_index=g.edge_index[:, e0:e1].long(),
            bond_length=g.bond_length[e0:e1].clone(),
            lg_edge_index=torch.from_numpy(lg),
            angle_cos=torch.from_numpy(cos.copy()),
            y=g.targets[row : row + 1].float(),
            sample_id=g.ids[row],
            num_nodes=n_atoms,
            **extra,
        )

    def collate(self, indices: Sequence[int]) -> Batch:
        """The batch of ``indices`` (positions in this dataset), built in one vectorised step;
        equal, key by key, to ``Batch.from_data_list([self[i] for i in indices])``."""
        g = self.graphs
        rows = np.asarray([self.rows[i] for i in indices], dtype=np.int64)
        atom_ptr, edge_ptr, lg_ptr = g.atom_ptr.numpy(), g.edge_ptr.numpy(), g.lg_ptr.numpy()
        n_atoms = atom_ptr[rows + 1] - atom_ptr[rows]  # (B,)
        n_edges = edge_ptr[rows + 1] - edge_ptr[rows]
        n_lg = lg_ptr[rows + 1] - lg_ptr[rows]
        atom_start = np.cumsum(n_atoms) - n_atoms  # first atom / bond of each crystal
        edge_start = np.cumsum(n_edges) - n_edges
        edge_index = _concat(g.edge_index, edge_ptr, rows, axis=1).astype(np.int64)
        edge_index += np.repeat(atom_start, n_edges)
        lg_src = _concat(g.lg_src, lg_ptr, rows).astype(np.int64) + np.repeat(edge_start, n_lg)
        lg_dst = line_graph_targets(edge_index, int(n_atoms.sum()))
        b = len(rows)
        fields: dict[str, Any] = {
            "z": torch.from_numpy(_concat(g.z, atom_ptr, rows).astype(np.int64)),
            "edge_index": torch.from_numpy(edge_index),
            "bond_length": torch.from_numpy(_concat(g.bond_length, edge_ptr, rows)),
            "lg_edge_index": torch.from_numpy(np.stack([lg_src, lg_dst])),
            "angle_cos": torch.from_numpy(_concat(g.angle_cos, lg_ptr, rows)),
            "y": g.targets[torch.from_numpy(rows)].float(),
            "sample_id": [g.ids[r] for r in rows],
        }
        sizes = {
            "z": n_atoms,
            "edge_index": n_edges,
            "bond_length": n_edges,
            "lg_edge_index": n_lg,
            "angle_cos": n_lg,
            "y": np.ones(b, np.int64),
            "sample_id": np.ones(b, np.int64),
        }
        if self.tokens is not None:  # absent in a graph-only dataset (text=none)
            token_ptr = self.tokens["token_ptr"].numpy()
            n_tokens = token_ptr[rows + 1] - token_ptr[rows]
            real = np.arange(self.max_length) < n_tokens[:, None]  # (B, L)
            input_ids = np.full((b, self.max_length), self.pad_token_id, dtype=np.int64)
            input_ids[real] = _concat(self.tokens["token_ids"], token_ptr, rows)
            fields["input_ids"] = torch.from_numpy(input_ids)
            fields["attention_mask"] = torch.from_numpy(real.astype(np.int64))
            sizes["input_ids"] = sizes["attention_mask"] = np.ones(b, np.int64)
            if self.text_states is not None:
                fields["text_states"] = self.text_states.gather(rows.tolist())
                sizes["text_states"] = n_tokens
        increments = {"edge_index": atom_start, "lg_edge_index": edge_start}
        return _batch(fields, sizes, increments, n_atoms)


def _batch(
    fields: dict[str, Any],
    sizes: dict[str, np.ndarray],
    increments: dict[str, np.ndarray],
    n_atoms: np.ndarray,
) -> Batch:
    """A PyG ``Batch`` of :class:`CrystalGraphData` from concatenated fields, with the slice
    and increment bookkeeping ``Batch.from_data_list`` would record (so ``to_data_list`` and
    indexing work on it)."""
    batch = Batch(_base_cls=CrystalGraphData)
    for key, value in fields.items():
        batch[key] = value
    n = len(n_atoms)
    batch.batch = torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), n_atoms))
    batch.ptr = torch.from_numpy(np.concatenate([[0], np.cumsum(n_atoms)]))
    batch.num_nodes = int(n_atoms.sum())
    batch._num_graphs = n
    batch._slice_dict = {
        k: torch.from_numpy(np.concatenate([[0], np.cumsum(v)])) for k, v in sizes.items()
    }
    batch._inc_dict = {
        k: None if k == "sample_id" else torch.from_numpy(increments.get(k, np.zeros(n, np.int64)))
        for k in sizes
    }
    return batch


class BatchedCrystalDataset(torch.utils.data.Dataset):
    """A view of a :class:`CrystalDataset` whose batches a ``torch.utils.data.DataLoader``
    builds with :meth:`CrystalDataset.collate` (through ``__getitems__``); use it with
    ``collate_fn=as_batch``. Attributes are the dataset's own (so text states attached to it
    later are served too). A PyG ``DataLoader`` needs the plain :class:`CrystalDataset`."""

    def __init__(self, dataset: CrystalDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> CrystalGraphData:
        return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> Batch:
        return self.dataset.collate(indices)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def as_batch(batch: Batch) -> Batch:
    """``collate_fn`` of a loader over a :class:`BatchedCrystalDataset`: the batch as built."""
    return batch
