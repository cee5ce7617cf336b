"""Crystal -> periodic neighbour graph (atom graph) and its line graph, as upstream ALIGNN.

Two neighbour strategies (``dataset.neighbor_strategy``):

* ``k-nearest`` (default): upstream ALIGNN's default graph (alignn ``graphs.py``,
  ``nearest_neighbor_edges(use_canonize=True)`` + ``build_undirected_edgedata``), the graph
  behind the published ALIGNN results. Each atom keeps its whole neighbour shell out to the
  distance of its ``max_neighbors``-th nearest neighbour (ties at that distance are all kept),
  over all periodic images. The search starts at ``cutoff``; while some atom has fewer than
  ``max_neighbors`` neighbours within it, the radius grows as upstream grows it (to the longest
  lattice vector, then doubling), so every atom has at least ``max_neighbors`` bonds. Bonds are
  then made undirected: every bond ``(i, j, image)`` is stored once as an edge in each
  direction. A bond of an atom to its own periodic image appears twice in each direction, as
  upstream's canonisation emits it (its images ``+n`` and ``-n`` are both kept and each adds
  both directions); distances are computed with upstream's (jarvis-tools') arithmetic, so
  exact ties are decided as upstream decides them.
* ``pure``: the neighbour rule of upstream's optional pure-torch builder
  (``alignn.torch_graph_builder.build_pure_torch_graph``): for every atom the ``max_neighbors``
  nearest neighbours within ``cutoff`` (fewer if fewer lie within it), no symmetrisation, no
  growth. Its edges point from each neighbour to its centre (upstream's pure builder points them
  from the centre, so each atom here aggregates its own nearest neighbours). Ties at the k-th
  distance are broken by the bond vector (smallest x, then y, then z), not by atom order.

Conventions for both (PyG's ``source -> target`` flow; the model aggregates at ``edge_index[1]``,
as upstream's DGL model aggregates at the edge's destination):

* Atom graph: ``edge_index`` (2, E) rows (src, dst); the bond vector of edge ``u -> v`` is the
  displacement from ``u`` to the periodic image of ``v``: ``r = pos[v] + image_offset - pos[u]``
  (upstream's ``build_undirected_edgedata``).
* Line graph: its nodes are the atom graph's edges. For bonds ``a = (u -> v)`` and
  ``b = (v -> w)`` there is a line-graph edge ``a -> b`` (backtracking pairs ``w == u``
  included, as DGL's ``line_graph(shared=True)``), whose feature is the cosine of the bond angle
  at ``v``: ``cos = (-r_a) . r_b / (|r_a| |r_b|)``, clamped to [-1, 1] (upstream's
  ``compute_bond_cosines``).

Both strategies are invariant under a permutation of the atoms: every distance is computed from
the two positions and the image alone, and nothing is decided by atom order. Atoms closer than
``MIN_BOND_LENGTH`` (also through a periodic image, and two sites at the same position) refuse
the structure, naming both sites; upstream silently ignores such pairs. An atom whose nearest
neighbour is farther than ``MAX_NEAREST_NEIGHBOR`` (50 A, or ``cutoff`` if larger) is one no
bond reaches and refuses the structure too (k-nearest would grow its radius that far).
Everything is vectorised numpy on one crystal; memory is bounded by processing centre atoms
in chunks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

import numpy as np

NEIGHBOR_STRATEGIES = ("k-nearest", "pure")
# Angstrom; closer pairs mean overlapping atoms (a broken structure). jarvis-tools' bond_tol:
# upstream ignores pairs up to this distance, so accepted structures have the same candidates.
MIN_BOND_LENGTH = 0.15
# Most periodic image sites (images x atoms) one neighbour search may enumerate; a structure
# needing more (a grown radius in a huge, sparse cell) is refused instead of exhausting memory.
MAX_IMAGE_SITES = 2_000_000
# Angstrom; an atom whose nearest neighbour (a periodic image of itself included) is farther,
# and farther than dataset.cutoff, is one no bond reaches: the k-nearest radius would grow
# until it had bonds of that length, a graph of nothing physical. Far above the vacuum of any
# slab or molecule-in-a-box cell (upstream grows there too, and so does k-nearest here).
MAX_NEAREST_NEIGHBOR = 50.0
_CHUNK_ELEMENTS = 1 << 18  # distances computed at once: centres per chunk x image sites


class StructureError(ValueError):
    """A structure that cannot be turned into a graph; the message says why."""


def _checked(lattice: np.ndarray, cart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lattice = np.asarray(lattice, dtype=np.float64)
    cart = np.asarray(cart, dtype=np.float64).reshape(-1, 3)
    if cart.shape[0] == 0:
        raise StructureError("structure has no atoms")
    if not (np.isfinite(lattice).all() and np.isfinite(cart).all()):
        raise StructureError("lattice or positions contain NaN/inf")
    volume = abs(np.linalg.det(lattice))
    if volume < 1e-6:
        raise StructureError(f"degenerate lattice (volume {volume:.3g} A^3)")
    return lattice, cart


def periodic_shifts(lattice: np.ndarray, cart: np.ndarray, radius: float) -> np.ndarray:
    """Integer image shifts (K, 3) whose images of ``cart`` can lie within ``radius`` of an atom.

    Complete for any positions, wrapped into the cell or not: along lattice direction k a
    neighbour within ``radius`` needs ``|shift_k| <= radius / spacing_k + span_k`` (``span_k``:
    the extent of the fractional coordinates), and an image whose offset is longer than
    ``radius`` plus the atoms' diameter holds no such neighbour (those are pruned).

    Args:
        lattice (np.ndarray): (3, 3), rows are lattice vectors in Angstrom.
        cart (np.ndarray): (N, 3) Cartesian positions in Angstrom.
        radius (float): search radius in Angstrom.

    Raises:
        StructureError: the box of shifts to prune would exceed twice ``MAX_IMAGE_SITES``.
    """
    inv = np.linalg.inv(lattice)
    span = np.ptp(cart @ inv, axis=0)  # (3,)
    # |column k of inv| = 1 / (spacing of lattice planes k)
    reach = np.floor(radius * np.linalg.norm(inv, axis=0) + span + 1e-9).astype(np.int64)
    n_box = int(np.prod(2 * reach + 1)) * cart.shape[0]
    if n_box > 2 * MAX_IMAGE_SITES:
        raise StructureError(_too_sparse(radius, n_box))
    shifts = _shift_box(*(int(n) for n in reach))
    diameter = 2.0 * np.sqrt(((cart - cart.mean(axis=0)) ** 2).sum(axis=1).max())
    limit = (radius + diameter) * (1 + 1e-9) + 1e-9
    return shifts[np.linalg.norm(shifts @ lattice, axis=1) <= limit]


def _too_sparse(radius: float, n_sites: int) -> str:
    return (
        f"a neighbour search radius of {radius:.4g} A would enumerate {n_sites:,} periodic image "
        f"sites (limit {MAX_IMAGE_SITES:,}); the cell is too sparse for this graph (a molecule "
        "or slab in a large empty cell?)"
    )


@functools.lru_cache(maxsize=256)
def _shift_box(n0: int, n1: int, n2: int) -> np.ndarray:
    """All integer shifts with ``|shift_k| <= n_k`` as (K, 3) int64 (read-only, cached)."""
    box = np.mgrid[-n0 : n0 + 1, -n1 : n1 + 1, -n2 : n2 + 1].reshape(3, -1).T.copy()
    box.flags.writeable = False
    return box


class _Images:
    """All periodic image sites within reach of ``radius``, image-major: site ``s`` is atom
    ``s % N`` shifted by ``shifts[s // N]``."""

    def __init__(self, lattice: np.ndarray, cart: np.ndarray, radius: float) -> None:
        n = cart.shape[0]
        self.radius = radius
        self.shifts = periodic_shifts(lattice, cart, radius)  # (K, 3) int64
        n_sites = self.shifts.shape[0] * n
        if n_sites > MAX_IMAGE_SITES:
            raise StructureError(_too_sparse(radius, n_sites))
        # offset + position, in jarvis-tools' order (np.dot(image, matrix) + coords), so that
        # distances are bitwise upstream's and exact ties are decided as upstream decides them
        offsets = self.shifts.astype(np.float64) @ lattice  # (K, 3)
        self.sites = (offsets[:, None, :] + cart[None, :, :]).reshape(-1, 3)  # (K*N, 3)
        self.home = int(np.flatnonzero((self.shifts == 0).all(axis=1))[0])
        self.n = n

    def distances(self, cart: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """(C, K*N) distances from ``centres`` to every site; inf for the centre itself and
        beyond the radius. Raises :class:`StructureError` on overlapping sites."""
        d2 = None
        for c in range(3):  # ((dx^2 + dy^2) + dz^2), then sqrt: jarvis-tools' arithmetic
            diff = self.sites[None, :, c] - cart[centres, c][:, None]
            d2 = diff * diff if d2 is None else d2 + diff * diff
        d = np.sqrt(d2)
        d[np.arange(centres.size), self.home * self.n + centres] = np.inf  # self, by index
        close = d < MIN_BOND_LENGTH
        if close.any():
            row, col = (int(x[0]) for x in np.nonzero(close))
            raise StructureError(self._overlap_message(int(centres[row]), col, float(d[row, col])))
        d[d > self.radius] = np.inf
        return d

    def _overlap_message(self, i: int, site: int, dist: float) -> str:
        j, shift = site % self.n, self.shifts[site // self.n]
        where = "" if not shift.any() else f" (its periodic image {tuple(int(s) for s in shift)})"
        if dist < 1e-8:
            return f"sites {i} and {j}{where} coincide (same position)"
        return f"atoms overlap: sites {i} and {j}{where} are {dist:.3f} A apart (< {MIN_BOND_LENGTH} A)"

    def bond_vectors(self, cart: np.ndarray, centre: np.ndarray, site: np.ndarray) -> np.ndarray:
        """(M, 3) displacements from ``centre`` atoms to image ``site``s."""
        return self.sites[site] - cart[centre]


def _chunks(centres: np.ndarray, n_sites: int) -> Iterator[np.ndarray]:
    size = max(1, _CHUNK_ELEMENTS // max(n_sites, 1))
    for start in range(0, centres.size, size):
        yield centres[start : start + size]


def _kth_smallest(d: np.ndarray, k: int) -> np.ndarray:
    """(C,) the k-th smallest entry of each row of ``d`` (inf when a row has fewer finite)."""
    if d.shape[1] < k:
        return np.full(d.shape[0], np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _grow(radius: float, lattice: np.ndarray) -> float:
    """Upstream's next radius (``nearest_neighbor_edges``): the longest lattice vector, then 2x."""
    longest = float(np.linalg.norm(lattice, axis=1).max())
    return longest if radius < longest else 2.0 * radius


def knearest_edges(
    lattice: np.ndarray, cart: np.ndarray, cutoff: float, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ALIGNN's default k-nearest graph (``use_canonize=True``); see the module doc.

    Args:
        lattice (np.ndarray): (3, 3) lattice vectors as rows, Angstrom.
        cart (np.ndarray): (N, 3) Cartesian positions, Angstrom.
        cutoff (float): first search radius; grown until every atom has ``max_neighbors``.
        max_neighbors (int): each atom keeps all neighbours out to its k-th nearest distance.

    Returns:
        edge_index: (2, E) int64 (src, dst); every bond in both directions.
        r: (E, 3) float64 bond vectors ``pos[dst] + offset - pos[src]``.
    """
    lattice, cart = _checked(lattice, cart)
    n = cart.shape[0]
    pending, radius = np.arange(n), float(cutoff)
    centres, neighbours, shifts, vectors = [], [], [], []
    while pending.size:
        images = _Images(lattice, cart, radius)
        short = []
        for chunk in _chunks(pending, images.sites.shape[0]):
            d = images.distances(cart, chunk)  # (C, K*N)
            kth = _kth_smallest(d, max_neighbors)
            full = np.isfinite(kth)  # rows with >= k neighbours within the radius
            short.append(chunk[~full])
            row, site = np.nonzero(d[full] <= kth[full, None])
            centre = chunk[full][row]
            centres.append(centre)
            neighbours.append(site % n)
            shifts.append(images.shifts[site // n])
            vectors.append(images.bond_vectors(cart, centre, site))
        pending, radius = np.concatenate(short), _grow(radius, lattice)
    return _undirected(
        np.concatenate(centres),
        np.concatenate(neighbours),
        np.concatenate(shifts),
        np.concatenate(vectors),
        n,
    )


def _undirected(
    i: np.ndarray, j: np.ndarray, shift: np.ndarray, r: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's ``canonize_edge`` + ``build_undirected_edgedata`` on bonds ``i -> (j, shift)``.

    A bond is keyed ``(min, max, image of max relative to min)``; each distinct key adds the
    edge ``a -> b`` with ``r`` and ``b -> a`` with ``-r``. An atom's bond to its own image ``+s``
    and the one to ``-s`` are distinct keys, so each such directed edge appears twice.
    """
    swap = j < i
    a, b = np.where(swap, j, i), np.where(swap, i, j)
    s = np.where(swap[:, None], -shift, shift)
    r = np.where(swap[:, None], -r, r)
    base = 2 * int(np.abs(s).max(initial=0)) + 1
    code = (
        (a * n + b) * base**3 + ((s[:, 0] * base + s[:, 1]) * base + s[:, 2]) + (base**3 - 1) // 2
    )
    _, first = np.unique(code, return_index=True)
    a, b, r = a[first], b[first], r[first]
    edge_index = np.stack([np.concatenate([a, b]), np.concatenate([b, a])]).astype(np.int64)
    return edge_index, np.concatenate([r, -r])


def pure_edges(
    lattice: np.ndarray, cart: np.ndarray, cutoff: float, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's pure-torch neighbour rule with edges ``neighbour -> centre``; see the module doc.

    Args:
        lattice (np.ndarray): (3, 3) lattice vectors as rows, Angstrom.
        cart (np.ndarray): (N, 3) Cartesian positions, Angstrom.
        cutoff (float): neighbours farther than this are ignored.
        max_neighbors (int): at most this many neighbours per atom (the nearest).

    Returns:
        edge_index: (2, E) int64 (neighbour, centre), grouped by centre, nearest first.
        r: (E, 3) float64 bond vectors ``pos[dst] - (pos[src] + offset)``.

    Raises:
        StructureError: an atom has no neighbour within ``cutoff``.
    """
    lattice, cart = _checked(lattice, cart)
    n, k = cart.shape[0], max_neighbors
    images = _Images(lattice, cart, float(cutoff))
    centres, sites, dists = [], [], []
    for chunk in _chunks(np.arange(n), images.sites.shape[0]):
        d = images.distances(cart, chunk)  # (C, K*N)
        kth = _kth_smallest(d, k)
        take = d < kth[:, None]  # all finite ones where fewer than k lie within the cutoff
        row, site = np.nonzero(take)
        # ties at the k-th distance: keep the first ones by bond vector (x, then y, then z)
        need = k - take.sum(axis=1)
        t_row, t_site = np.nonzero((d == kth[:, None]) & np.isfinite(kth)[:, None])
        if t_row.size:
            t_vec = images.bond_vectors(cart, chunk[t_row], t_site)
            order = np.lexsort((t_vec[:, 2], t_vec[:, 1], t_vec[:, 0], t_row))
            t_row, t_site = t_row[order], t_site[order]
            starts = np.searchsorted(t_row, t_row)  # first tie of the same row
            keep = np.arange(t_row.size) - starts < need[t_row]
            row, site = np.concatenate([row, t_row[keep]]), np.concatenate([site, t_site[keep]])
        centres.append(chunk[row])
        sites.append(site)
        dists.append(d[row, site])
    centre, site, dist = np.concatenate(centres), np.concatenate(sites), np.concatenate(dists)
    vec = images.bond_vectors(cart, centre, site)  # centre -> neighbour image
    order = np.lexsort((vec[:, 2], vec[:, 1], vec[:, 0], dist, centre))
    centre, site, vec = centre[order], site[order], vec[order]
    edge_index = np.stack([site % n, centre]).astype(np.int64)
    return edge_index, -vec


def crystal_graph(
    lattice: np.ndarray,
    cart: np.ndarray,
    cutoff: float,
    max_neighbors: int,
    strategy: str = "k-nearest",
) -> tuple[np.ndarray, np.ndarray]:
    """The atom graph of one crystal under ``strategy`` (``k-nearest`` or ``pure``).

    Returns:
        edge_index: (2, E) int64 (src, dst). r: (E, 3) float64 ``pos[dst] + offset - pos[src]``.

    Raises:
        StructureError: a broken structure, or an atom that would receive no bond (with why).
    """
    if strategy == "k-nearest":
        edge_index, r = knearest_edges(lattice, cart, cutoff, max_neighbors)
    elif strategy == "pure":
        edge_index, r = pure_edges(lattice, cart, cutoff, max_neighbors)
    else:
        raise ValueError(
            f"unknown neighbor strategy {strategy!r}; choose one of {NEIGHBOR_STRATEGIES}"
        )
    n = np.asarray(cart).reshape(-1, 3).shape[0]
    lonely = np.flatnonzero(np.bincount(edge_index[1], minlength=n) == 0)
    if lonely.size:
        raise StructureError(
            f"{lonely.size} atom(s) (site {int(lonely[0])} first) have no neighbour within "
            f"{cutoff:g} A, so no bond reaches them; use dataset.neighbor_strategy=k-nearest "
            "(it grows the radius) or a larger dataset.cutoff"
        )
    reach = max(MAX_NEAREST_NEIGHBOR, float(cutoff))
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, edge_index[1], np.linalg.norm(r, axis=1))
    far = np.flatnonzero(nearest > reach)
    if far.size:
        first = int(far[0])
        raise StructureError(
            f"{far.size} atom(s) (site {first} first, nearest neighbour {nearest[first]:.4g} A "
            f"away) have no neighbour within {reach:g} A, so no bond reaches them (an isolated "
            "atom: its bonds would describe nothing physical)"
        )
    return edge_index, r


def line_graph(edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
    """Line-graph edges ``a -> b`` for every pair of bonds ``a = (u -> v)``, ``b = (v -> w)``.

    The same pairs as DGL's ``line_graph(shared=True)`` (backtracking ``w == u`` included;
    repeated atom-graph edges are distinct line-graph nodes).

    Args:
        edge_index (np.ndarray): (2, E) atom graph (any edge order).
        num_nodes (int): number of atoms.

    Returns:
        (2, T) int64 indices into the atom graph's edges; T = sum over bonds a of out-degree(dst a).
    """
    src, dst = edge_index
    by_target = np.argsort(dst, kind="stable")
    counts = np.bincount(dst, minlength=num_nodes)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    # For bond b with source v, the incoming bonds a = (u -> v) are by_target[ptr[v]:ptr[v+1]].
    n_pred = counts[src]  # (E,)
    total = int(n_pred.sum())
    b = np.repeat(np.arange(src.shape[0]), n_pred)
    start = np.repeat(ptr[src], n_pred)
    within = np.arange(total) - np.repeat(np.cumsum(n_pred) - n_pred, n_pred)
    a = by_target[start + within]
    return np.stack([a, b]).astype(np.int64)


def bond_cosines(r: np.ndarray, lg_edge_index: np.ndarray) -> np.ndarray:
    """Cosine of the angle at the shared atom ``v`` for each line-graph edge ``a -> b``.

    Upstream's ``compute_bond_cosines``: ``(-r_a) . r_b / (|r_a| |r_b|)``, clamped to [-1, 1],
    with ``a = (u -> v)``, ``b = (v -> w)`` and ``r = pos[dst] + offset - pos[src]``.

    Args:
        r (np.ndarray): (E, 3) bond vectors.
        lg_edge_index (np.ndarray): (2, T) line-graph edges.

    Returns:
        (T,) float32 in [-1, 1].
    """
    ra = -r[lg_edge_index[0]]
    rb = r[lg_edge_index[1]]
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
