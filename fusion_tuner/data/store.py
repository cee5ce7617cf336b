"""The graph-cache entry as a type: every crystal's atoms, bonds and target, concatenated.

Stored on disk as a plain dict of tensors and lists (``torch.load(weights_only=True)`` reads
it); :meth:`GraphStore.from_dict` checks its keys and version, :meth:`GraphStore.to_dict` is
what :func:`fusion_tuner.data.features.featurize_all` produces.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
import torch

from fusion_tuner.errors import DataError

_CHUNK = 1 << 22  # values checked at once: bounded temporaries on caches of any size


def _all_chunks(values: torch.Tensor, ok: Any) -> bool:
    """True when ``ok(chunk)`` holds everywhere, checked a chunk at a time."""
    return all(bool(ok(values[i : i + _CHUNK]).all()) for i in range(0, values.shape[0], _CHUNK))


def _within(
    index: torch.Tensor, ptr: torch.Tensor, target_ptr: torch.Tensor, along: int = 0
) -> bool:
    """True when every per-crystal ``index`` (elements ``ptr[c]:ptr[c+1]`` along ``along``)
    lies in ``[0, size of crystal c in target_ptr)``: per-crystal minima and maxima by
    ``reduceat``, without temporaries the size of ``index``."""
    counts = np.diff(ptr.numpy())
    nonempty = counts > 0
    if not nonempty.any():
        return True
    starts = ptr.numpy()[:-1][nonempty]  # strictly increasing: each segment ends at the next
    values = index.numpy()
    low = np.minimum.reduceat(values, starts, axis=along)
    high = np.maximum.reduceat(values, starts, axis=along)
    return bool((low >= 0).all() and (high < np.diff(target_ptr.numpy())[nonempty]).all())


@dataclass(frozen=True)
class GraphStore:
    """Featurised crystals; row ``i`` is crystal ``ids[i]``.

    Attributes:
        ids (list[str]): crystal ids, one per row.
        targets (Tensor): (C,) float64 targets in their own units.
        z (Tensor): (N,) int16 atomic numbers of all crystals, concatenated.
        atom_ptr (Tensor): (C + 1,) int64 offsets of each crystal's atoms in ``z``.
        edge_index (Tensor): (2, E) int32 bonds ``src -> dst`` in per-crystal atom indices.
        edge_ptr (Tensor): (C + 1,) int64 offsets of each crystal's bonds.
        r (Tensor): (E, 3) float32 bond vectors (Angstrom).
        bond_length (Tensor): (E,) float32 ``|r|`` (Angstrom).
        lg_src (Tensor): (T,) int32 line-graph edges ``a -> b`` of all crystals, concatenated:
            the per-crystal index of bond ``a``. The targets ``b`` are not stored: edges are
            ordered by ``b``, and bond ``b = (v -> w)`` is the target of one edge per bond
            entering ``v``, so ``b = repeat(arange(E_row), in_degree[src])``
            (:func:`line_graph_targets`).
        lg_ptr (Tensor): (C + 1,) int64 offsets of each crystal's line-graph edges.
        angle_cos (Tensor): (T,) float32 bond-angle cosine of each line-graph edge.
        failed (list): ``[id, reason]`` of crystals that could not be featurised.
        load_report (dict): what the loader read and dropped (``LoadReport.as_dict``).
        version (int): ``features.FEATURE_VERSION`` the entry was built with.
    """

    ids: list[str]
    targets: torch.Tensor
    z: torch.Tensor
    atom_ptr: torch.Tensor
    edge_index: torch.Tensor
    edge_ptr: torch.Tensor
    r: torch.Tensor
    bond_length: torch.Tensor
    lg_src: torch.Tensor
    lg_ptr: torch.Tensor
    angle_cos: torch.Tensor
    failed: list[list[str]]
    load_report: dict[str, Any]
    version: int

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> GraphStore:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in entry]
        if missing:
            raise DataError(f"graph cache entry lacks {missing}: it was written by other code")
        return cls(**{n: entry[n] for n in names})

    @classmethod
    def check(cls, entry: dict[str, Any]) -> None:
        """Raise :class:`DataError` unless ``entry`` is a complete, consistent graph entry."""
        store = cls.from_dict(entry)
        n = len(store.ids)
        problems = []
        ptrs = (store.atom_ptr, store.edge_ptr, store.lg_ptr)
        if (len(store.targets), *(len(p) - 1 for p in ptrs)) != (n,) * 4:
            problems.append("per-crystal arrays disagree in length")
        elif int(store.atom_ptr[-1]) != len(store.z):
            problems.append("atom offsets do not match the atoms")
        elif not (
            int(store.edge_ptr[-1])
            == store.edge_index.shape[1]
            == store.r.shape[0]
            == store.bond_length.shape[0]
        ):
            problems.append("bond offsets do not match the bonds")
        elif not int(store.lg_ptr[-1]) == len(store.lg_src) == len(store.angle_cos):
            problems.append("line-graph offsets do not match the line-graph edges")
        else:
            problems += store._value_problems()
        if problems:
            raise DataError(f"inconsistent graph cache entry: {'; '.join(problems)}")

    def _value_problems(self) -> list[str]:
        """What is wrong with the values (the shapes agree): offsets that run backwards, bonds
        to atoms a crystal does not have, line-graph edges to bonds it does not have,
        non-finite or non-positive bond lengths, bond-angle cosines outside [-1, 1]."""
        problems = []
        for name, ptr in (
            ("atom", self.atom_ptr),
            ("bond", self.edge_ptr),
            ("line-graph", self.lg_ptr),
        ):
            if len(ptr) and (int(ptr[0]) != 0 or bool((ptr[1:] < ptr[:-1]).any())):
                problems.append(f"{name} offsets do not start at 0 and grow")
        if problems:
            return problems
        if not _within(self.edge_index, self.edge_ptr, self.atom_ptr, along=1):
            problems.append("a bond refers to an atom outside its crystal (edge_index)")
        if not _within(self.lg_src, self.lg_ptr, self.edge_ptr):
            problems.append("a line-graph edge refers to a bond outside its crystal (lg_src)")
        if not _all_chunks(self.bond_length, lambda t: torch.isfinite(t) & (t > 0)):
            problems.append("a bond length is not a finite positive number")
        if not _all_chunks(self.r, torch.isfinite):
            problems.append("a bond vector is not finite")
        if not _all_chunks(self.angle_cos, lambda t: (t >= -1.0001) & (t <= 1.0001)):
            problems.append("a bond-angle cosine is not a number in [-1, 1]")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Crystal id -> row."""
        return {cid: row for row, cid in enumerate(self.ids)}

    def rows(self, ids: list[str]) -> list[int]:
        """Rows of ``ids``, in that order; an id not in the store is a :class:`DataError`."""
        missing = [i for i in ids if i not in self.row_of]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(ids)} ids are not in the featurised data "
                f"(e.g. {missing[:3]})"
            )
        return [self.row_of[i] for i in ids]

    def atomic_numbers(self, row: int) -> torch.Tensor:
        """(N_row,) int16 atomic numbers of one crystal."""
        return self.z[int(self.atom_ptr[row]) : int(self.atom_ptr[row + 1])]

    def num_atoms(self, row: int) -> int:
        return int(self.atom_ptr[row + 1] - self.atom_ptr[row])

    def line_graph(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``lg_edge_index`` (2, T_row) int64 and angle cosines (T_row,) float32 of one crystal."""
        e0, e1 = int(self.edge_ptr[row]), int(self.edge_ptr[row + 1])
        t0, t1 = int(self.lg_ptr[row]), int(self.lg_ptr[row + 1])
        edge_index = self.edge_index[:, e0:e1].numpy()
        src = self.lg_src[t0:t1].numpy().astype(np.int64)
        dst = line_graph_targets(edge_index, self.num_atoms(row))
        return np.stack([src, dst]), self.angle_cos[t0:t1].numpy()

    def bonds(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """``edge_index`` (2, E_row) int64 and bond vectors ``r`` (E_row, 3) of one crystal."""
        e0, e1 = int(self.edge_ptr[row]), int(self.edge_ptr[row + 1])
        return self.edge_index[:, e0:e1].numpy().astype(np.int64), self.r[e0:e1].numpy()


def line_graph_targets(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """The ``b`` row of :func:`~fusion_tuner.data.graphs.line_graph`'s output, from the atom
    graph alone: bond ``b = (v -> w)`` is the target of one edge per bond entering ``v``, and
    the edges are ordered by ``b``. Works on a batch too (a disjoint union of crystals, atom
    indices offset), giving the batch's targets in bond indices of the batch.

    Args:
        edge_index (np.ndarray): (2, E) bonds ``src -> dst``.
        num_nodes (int): number of atoms.

    Returns:
        (T,) int64.
    """
    src, dst = edge_index[0], edge_index[1]
    in_degree = np.bincount(dst, minlength=num_nodes)
    return np.repeat(np.arange(src.shape[0], dtype=np.int64), in_degree[src])
