"""Featurise crystals into compact graph arrays, and their texts (own or ``Atoms.describe()``).

The graph store keeps, for all crystals together, atomic numbers, the atom graph (built by
``dataset.neighbor_strategy``, see ``graphs.py``), bond vectors ``pos[dst] + offset - pos[src]``
and bond lengths, and the line graph with its angle cosines, as concatenated tensors with
offsets (see ``store.py``). Everything a sample needs is computed here, once per crystal, so
that drawing a batch is slicing and concatenating (``dataset.py``): 24 bytes per bond and 8 per
line-graph edge (about 14 line-graph edges per bond on JARVIS crystals).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing import get_context
from typing import Any

import numpy as np
import torch

from fusion_tuner.data.graphs import (
    StructureError,
    atomic_numbers,
    bond_cosines,
    cgcnn_table,
    crystal_graph,
    line_graph,
)
from fusion_tuner.data.records import Crystal

log = logging.getLogger(__name__)

# 2: neighbour strategies (upstream's k-nearest default), r = pos[dst] + offset - pos[src],
#    JARVIS positions as jarvis-tools computes them, coincident and edgeless sites refused
# 3: bond lengths, line graphs and angle cosines precomputed (store.py)
FEATURE_VERSION = 3


def featurize_crystal(
    crystal: Crystal, cutoff: float, max_neighbors: int, neighbor_strategy: str = "k-nearest"
) -> dict[str, np.ndarray]:
    """One crystal -> ``z`` (N,), ``edge_index`` (2, E), bond vectors ``r`` (E, 3), bond
    lengths (E,), the line graph's sources ``lg_src`` (T,) and angle cosines (T,).

    Raises:
        StructureError: unknown element, no CGCNN features, or no valid graph (with the reason).
    """
    numbers = atomic_numbers()
    try:
        z = np.array([numbers[el] for el in crystal.elements], dtype=np.int64)
    except KeyError as exc:
        raise StructureError(f"unknown element {exc.args[0]!r}") from None
    table = cgcnn_table()
    bad = sorted({int(v) for v in z if v >= len(table) or np.isnan(table[v, 0])})
    if bad:
        raise StructureError(f"no CGCNN atom features for Z={bad}")
    edge_index, r = crystal_graph(
        crystal.lattice, crystal.cart, cutoff, max_neighbors, neighbor_strategy
    )
    lg = line_graph(edge_index, len(z))
    r32 = r.astype(np.float32)  # lengths and cosines of the bond vectors as stored
    return {
        "z": z,
        "edge_index": edge_index,
        "r": r,
        "bond_length": np.linalg.norm(r32, axis=1),
        "lg_src": lg[0],
        "angle_cos": bond_cosines(r32.astype(np.float64), lg),
    }


def _featurize_chunk(
    args: tuple[Sequence[Crystal], float, int, str],
) -> list[tuple[str, dict[str, np.ndarray] | str]]:
    crystals, cutoff, k, strategy = args
    out: list[tuple[str, dict[str, np.ndarray] | str]] = []
    for c in crystals:
        try:
            out.append((c.id, featurize_crystal(c, cutoff, k, strategy)))
        except (StructureError, np.linalg.LinAlgError) as exc:
            out.append((c.id, f"graph: {exc}"))
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parallel_map(fn: Callable[[Any], list[Any]], chunks: list[Any], num_workers: int) -> list[Any]:
    """Map ``fn`` over ``chunks`` in this process (``num_workers=0``) or a spawn-free fork pool."""
    if num_workers <= 0 or len(chunks) <= 1:
        return [row for chunk in chunks for row in fn(chunk)]
    with get_context("fork").Pool(num_workers) as pool:
        return [row for part in pool.map(fn, chunks) for row in part]


def featurize_all(
    crystals: Sequence[Crystal],
    cutoff: float,
    max_neighbors: int,
    num_workers: int = 0,
    neighbor_strategy: str = "k-nearest",
) -> dict[str, Any]:
    """Featurise every crystal; failures are listed, never silently dropped.

    Returns a dict of tensors (the cache entry, :class:`~fusion_tuner.data.store.GraphStore`):
    ``ids``, ``targets`` (float64), ``z``, ``atom_ptr``, ``edge_index`` (int32, per-crystal atom
    indices), ``edge_ptr``, ``r`` and ``bond_length`` (float32), ``lg_src`` (int32, per-crystal
    bond indices), ``lg_ptr``, ``angle_cos`` (float32), and ``failed``: ``[id, reason]`` pairs.
    """
    chunks = [
        (list(c), cutoff, max_neighbors, neighbor_strategy) for c in _chunks(list(crystals), 256)
    ]
    results = parallel_map(_featurize_chunk, chunks, num_workers)
    targets = {c.id: c.target for c in crystals}
    ids, failed = [], []
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("z", "edge_index", "r", "bond_length", "lg_src", "angle_cos")
    }
    for cid, res in results:
        if isinstance(res, str):
            failed.append([cid, res])
            continue
        ids.append(cid)
        for key, values in parts.items():
            values.append(res[key])
    zs, eis, rs = parts["z"], parts["edge_index"], parts["r"]
    n_atoms = np.array([len(z) for z in zs], dtype=np.int64)
    n_edges = np.array([e.shape[1] for e in eis], dtype=np.int64)
    n_lg = np.array([len(a) for a in parts["lg_src"]], dtype=np.int64)

    def flat(key: str, dtype: torch.dtype) -> torch.Tensor:
        values = parts[key]
        return torch.from_numpy(np.concatenate(values) if values else np.zeros(0)).to(dtype)

    return {
        "version": FEATURE_VERSION,
        "ids": ids,
        "targets": torch.tensor([targets[i] for i in ids], dtype=torch.float64),
        "z": torch.from_numpy(np.concatenate(zs) if zs else np.zeros(0, np.int64)).to(torch.int16),
        "atom_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(n_atoms)])),
        "edge_index": torch.from_numpy(
            np.concatenate(eis, axis=1) if eis else np.zeros((2, 0), np.int64)
        ).to(torch.int32),
        "edge_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(n_edges)])),
        "r": torch.from_numpy(np.concatenate(rs) if rs else np.zeros((0, 3))).to(torch.float32),
        "bond_length": flat("bond_length", torch.float32),
        "lg_src": flat("lg_src", torch.int32),
        "lg_ptr": torch.from_numpy(np.concatenate([[0], np.cumsum(n_lg)])),
        "angle_cos": flat("angle_cos", torch.float32),
        "failed": failed,
    }


# what spglib's C library writes to stderr when a symmetry search fails ("spglib:
# ssm_get_exact_positions failed."); Atoms.describe() then falls back, and the text is still made
SPGLIB_PREFIX = "spglib: "


@contextlib.contextmanager
def _c_stderr_lines() -> Iterator[list[str]]:
    """Capture what is written to file descriptor 2 meanwhile (C libraries such as spglib write
    there, beneath Python's ``sys.stderr``); the lines are in the yielded list afterwards."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", errors="replace").splitlines())


def _describe_chunk(args: tuple[Sequence[Crystal], str]) -> list[tuple[str, str, bool, int]]:
    """(id, text or error, ok, spglib messages) per crystal; spglib's stderr lines are counted,
    any other stderr output is passed on."""
    from jarvis.core.atoms import Atoms

    crystals, variant = args
    out = []
    for c in crystals:
        with _c_stderr_lines() as lines:
            try:
                atoms = Atoms(
                    lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True
                )
                result = (c.id, str(atoms.describe()[variant]), True)
            except Exception as exc:  # spglib and jarvis raise many types on odd structures
                result = (c.id, f"describe(): {type(exc).__name__}: {exc}", False)
        spglib = [line for line in lines if line.startswith(SPGLIB_PREFIX)]
        other = [line for line in lines if not line.startswith(SPGLIB_PREFIX)]
        if other:
            sys.stderr.write("\n".join(other) + "\n")
        out.append((*result, len(spglib)))
    return out


def describe_all(
    crystals: Sequence[Crystal], variant: str, num_workers: int = 0
) -> tuple[dict[str, str], list[list[str]], int]:
    """Texts from ``jarvis.core.atoms.Atoms.describe()[variant]``; returns (texts, failures,
    number of spglib messages), the messages counted and logged in one line instead of
    printed."""
    chunks = [(list(c), variant) for c in _chunks(list(crystals), 64)]
    texts: dict[str, str] = {}
    failed: list[list[str]] = []
    messages, crystals_with = 0, 0
    for cid, text, ok, n_spglib in parallel_map(_describe_chunk, chunks, num_workers):
        messages, crystals_with = messages + n_spglib, crystals_with + (n_spglib > 0)
        if ok:
            texts[cid] = text
        else:
            failed.append([cid, text])
    if messages:
        log.info(
            "Atoms.describe(): spglib reported %d failed symmetry searches for %d of %d crystals "
            "(their texts were still made; counted in data_report.json)",
            messages,
            crystals_with,
            len(crystals),
        )
    return texts, failed, messages
