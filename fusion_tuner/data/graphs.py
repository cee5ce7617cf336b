"""Crystal -> periodic k-nearest-neighbour atom graph and its line graph (ALIGNN conventions).

Conventions (PyG's ``source -> target`` flow):

* Atom graph: for every atom ``i`` (the *centre*) the ``max_neighbors`` nearest atoms ``j``
  within ``cutoff``, over all periodic images, give edges ``j -> i``. So ``edge_index[1]`` is
  the centre and every atom receives exactly ``max_neighbors`` bonds unless fewer neighbours
  lie within the cutoff (then it receives those it has; an atom with none is kept, edgeless).
  The bond vector of edge ``j -> i`` is ``r = pos[j] + image_offset - pos[i]``.
* Line graph: its nodes are the atom graph's edges. For bonds ``a = (j -> i)`` and
  ``b = (i -> m)`` sharing atom ``i`` there is a line-graph edge ``a -> b``, whose feature is the
  cosine of the bond angle at ``i``: ``cos = r_a . (-r_b) / (|r_a| |r_b|)``; this is ALIGNN's
  ``(-r_ij) . r_jk`` rule with the same backtracking pairs (cos = 1).

Everything here is vectorised numpy on one crystal; no per-atom Python loops.
"""

from __future__ import annotations

import functools
import json

import numpy as np

SELF_TOLERANCE = 1e-8  # squared distance below which an image of an atom is itself
MIN_BOND_LENGTH = 0.1  # Angstrom; shorter bonds mean overlapping atoms (a broken structure)


class StructureError(ValueError):
    """A structure that cannot be turned into a graph; the message says why."""


def periodic_shifts(lattice: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer image shifts (K, 3) whose cells can hold a point within ``cutoff`` of the home cell.

    Args:
        lattice (np.ndarray): (3, 3), rows are lattice vectors in Angstrom.
        cutoff (float): search radius in Angstrom.
    """
    inv = np.linalg.inv(lattice)
    # |column k of inv| = 1 / (spacing of lattice planes k); ceil(cutoff / spacing) images suffice.
    reach = np.ceil(cutoff * np.linalg.norm(inv, axis=0) + 1e-9).astype(np.int64)
    axes = [np.arange(-n, n + 1) for n in reach]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def knn_graph(
    lattice: np.ndarray, cart: np.ndarray, cutoff: float, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Periodic k-nearest-neighbour graph.

    Args:
        lattice (np.ndarray): (3, 3) lattice vectors as rows, Angstrom.
        cart (np.ndarray): (N, 3) Cartesian positions, Angstrom.
        cutoff (float): neighbours farther than this are ignored.
        max_neighbors (int): at most this many neighbours per atom (the nearest).

    Returns:
        edge_index: (2, E) int64, rows (neighbour j, centre i), grouped by centre in atom order.
        r: (E, 3) float64 bond vectors ``pos[j] + offset - pos[i]``.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    cart = np.asarray(cart, dtype=np.float64)
    n = cart.shape[0]
    if n == 0:
        raise StructureError("structure has no atoms")
    if not (np.isfinite(lattice).all() and np.isfinite(cart).all()):
        raise StructureError("lattice or positions contain NaN/inf")
    volume = abs(np.linalg.det(lattice))
    if volume < 1e-6:
        raise StructureError(f"degenerate lattice (volume {volume:.3g} A^3)")
    offsets = periodic_shifts(lattice, cutoff) @ lattice  # (K, 3)
    images = (cart[None, :, :] + offsets[:, None, :]).reshape(-1, 3)  # (K*N, 3), image-major
    diff = images[None, :, :] - cart[:, None, :]  # (N, K*N, 3)
    d2 = np.einsum("ikc,ikc->ik", diff, diff)  # (N, K*N)
    d2[(d2 < SELF_TOLERANCE) | (d2 > cutoff * cutoff)] = np.inf
    k = min(max_neighbors, d2.shape[1])
    if k < d2.shape[1]:
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]  # (N, k), unordered
    else:
        nearest = np.broadcast_to(np.arange(d2.shape[1]), (n, d2.shape[1]))
    near_d2 = np.take_along_axis(d2, nearest, axis=1)
    order = np.argsort(near_d2, axis=1, kind="stable")
    nearest = np.take_along_axis(nearest, order, axis=1)
    near_d2 = np.take_along_axis(near_d2, order, axis=1)
    valid = np.isfinite(near_d2)  # (N, k); False where fewer than k lie within the cutoff
    centre = np.broadcast_to(np.arange(n)[:, None], nearest.shape)[valid]
    flat = nearest[valid]
    neighbour = flat % n
    r = diff[centre, flat]
    if r.size and np.sqrt(near_d2[valid].min()) < MIN_BOND_LENGTH:
        raise StructureError(
            f"atoms overlap (closest pair {np.sqrt(near_d2[valid].min()):.3f} A "
            f"< {MIN_BOND_LENGTH} A)"
        )
    edge_index = np.stack([neighbour, centre]).astype(np.int64)
    return edge_index, r


def line_graph(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """Line-graph edges ``a -> b`` for every pair of bonds ``a = (j -> i)``, ``b = (i -> m)``.

    Args:
        edge_index (np.ndarray): (2, E) atom graph from :func:`knn_graph` (any edge order).
        num_nodes (int): number of atoms.

    Returns:
        (2, T) int64 indices into the atom graph's edges; T = sum over bonds b of in-degree(b's source).
    """
    src, dst = edge_index
    by_target = np.argsort(dst, kind="stable")
    counts = np.bincount(dst, minlength=num_nodes)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    # For bond b with source i, the incoming bonds of i are by_target[ptr[i]:ptr[i+1]].
    n_pred = counts[src]  # (E,)
    total = int(n_pred.sum())
    b = np.repeat(np.arange(src.shape[0]), n_pred)
    start = np.repeat(ptr[src], n_pred)
    within = np.arange(total) - np.repeat(np.cumsum(n_pred) - n_pred, n_pred)
    a = by_target[start + within]
    return np.stack([a, b]).astype(np.int64)


def bond_cosines(r: np.ndarray, lg_edge_index: np.ndarray) -> np.ndarray:
    """Cosine of the angle at the shared atom for each line-graph edge ``a -> b``.

    Args:
        r (np.ndarray): (E, 3) bond vectors (neighbour minus centre).
        lg_edge_index (np.ndarray): (2, T) line-graph edges.

    Returns:
        (T,) float32 in [-1, 1].
    """
    ra = r[lg_edge_index[0]]
    rb = -r[lg_edge_index[1]]
    num = np.einsum("tc,tc->t", ra, rb)
    den = np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1)
    return np.clip(num / np.maximum(den, 1e-12), -1.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def cgcnn_table() -> np.ndarray:
    """CGCNN's 92-dimensional atom features as a (Z_max + 1, 92) float32 table (row 0 unused).

    Read from the file jarvis-tools ships; rows of elements without features are NaN so that a
    structure containing one is rejected with a clear reason instead of silently zero-filled.
    """
    from jarvis.core.specie import cgcnn_feature_json

    with open(cgcnn_feature_json) as fh:
        raw = json.load(fh)
    z_max = max(int(k) for k in raw)
    width = len(next(iter(raw.values())))
    table = np.full((z_max + 1, width), np.nan, dtype=np.float32)
    for key, values in raw.items():
        table[int(key)] = values
    return table


@functools.lru_cache(maxsize=1)
def atomic_numbers() -> dict[str, int]:
    """Element symbol -> atomic number, from jarvis-tools' element data."""
    from jarvis.core.specie import chem_data

    return {symbol: int(props["Z"]) for symbol, props in chem_data.items()}
