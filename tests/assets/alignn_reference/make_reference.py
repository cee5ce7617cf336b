"""Write the upstream-ALIGNN reference graphs of the 50 labelled sample structures.

Usage (needs `pip install alignn==2026.8.11`, i.e. `pip install -e ".[bench]"`):

    python tests/assets/alignn_reference/make_reference.py [--root DIR] [--out FILE]

For each structure of ``jarvis_dft3d_alignn_sample50`` (read with jarvis-tools' ``Poscar``, as
upstream users read it) it runs upstream's two graph builders with cutoff 8 A and 12 neighbours:

* default (``Graph.atom_dgl_multigraph(neighbor_strategy="k-nearest", use_canonize=True)``,
  whose DGL-free part is ``nearest_neighbor_edges`` + ``build_undirected_edgedata``): the
  directed edges as integer rows ``(src, dst, image shift)`` (the shift is recovered exactly
  from upstream's bond vector, which is checked to be ``pos[dst] + shift @ lattice - pos[src]``
  within 1e-5 A), sorted, duplicates kept; and the line graph's angle cosines (DGL's
  ``line_graph(shared=True)`` pairs ``a = (u -> v)``, ``b = (v -> w)``, built here from its
  definition; cosines by upstream's ``compute_bond_cosines``), sorted.
* pure torch (``alignn.torch_graph_builder.build_pure_torch_graph``): the bond lengths of each
  centre atom (upstream's edge source), sorted per centre, and the line graph's cosines, sorted
  (upstream's own line graph and cosines).

Cosines are stored as sorted integers ``round(cos * 1e6)``, delta-encoded; everything goes into
one compressed ``reference.npz`` beside this script. tests/unit/test_alignn_reference.py
compares fusion_tuner's graphs with it, and with live upstream when alignn is installed.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parents[2] / "fusion_tuner/data/samples/jarvis_dft3d_alignn_sample50"
CUTOFF, MAX_NEIGHBORS = 8.0, 12
COS_SCALE = 1e6


def sample_files(root: Path) -> list[str]:
    """The structure files listed in ``root/id_prop.csv``, in its order."""
    with (root / "id_prop.csv").open(newline="") as fh:
        return [row[0].strip() for row in csv.reader(fh) if row and row[0].strip()]


def edge_rows(
    src: np.ndarray, dst: np.ndarray, r: np.ndarray, lattice: np.ndarray, cart: np.ndarray
) -> np.ndarray:
    """(E, 5) int64 rows ``(src, dst, shift)``, sorted, with ``r = cart[dst] + shift @ lattice -
    cart[src]``; raises AssertionError when some ``r`` is not such a vector within 1e-5 A."""
    base = cart[dst] - cart[src]
    shift = np.rint((r - base) @ np.linalg.inv(lattice)).astype(np.int64)
    err = np.abs(base + shift @ lattice - r).max(initial=0.0)
    assert err < 1e-5, f"bond vectors are not lattice translates (max error {err:.2e} A)"
    rows = np.concatenate([src[:, None], dst[:, None], shift], axis=1).astype(np.int64)
    return rows[np.lexsort(rows.T[::-1])]


def quantised(cos: np.ndarray) -> np.ndarray:
    """Sorted ``round(cos * 1e6)`` as int64."""
    return np.sort(np.rint(np.asarray(cos, dtype=np.float64) * COS_SCALE).astype(np.int64))


def lengths_by_centre(centre: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Bond lengths sorted by (centre, length)."""
    return np.asarray(length)[np.lexsort((length, centre))]


def upstream_default(atoms) -> dict[str, np.ndarray]:
    """Upstream's default k-nearest graph of a jarvis ``Atoms``: edge rows and sorted cosines."""
    import torch
    from alignn.graphs import (
        build_undirected_edgedata,
        compute_bond_cosines,
        nearest_neighbor_edges,
    )

    edges, _ = nearest_neighbor_edges(
        atoms=atoms, cutoff=CUTOFF, max_neighbors=MAX_NEIGHBORS, use_canonize=True
    )
    u, v, r, _images = build_undirected_edgedata(atoms, edges)
    u, v = u.numpy(), v.numpy()
    lattice, cart = np.asarray(atoms.lattice_mat), np.asarray(atoms.cart_coords)
    rows = edge_rows(u, v, r.numpy().astype(np.float64), lattice, cart)
    # DGL line_graph(shared=True): a -> b for every a = (x -> y), b = (y -> z)
    out_edges: dict[int, list[int]] = {}
    for e, s in enumerate(u.tolist()):
        out_edges.setdefault(s, []).append(e)
    pairs = [(a, b) for a, y in enumerate(v.tolist()) for b in out_edges.get(y, [])]
    a_idx = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    b_idx = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    cos = compute_bond_cosines(SimpleNamespace(src={"r": r[a_idx]}, dst={"r": r[b_idx]}))["h"]
    return {"edges": rows, "cos": quantised(cos.numpy())}


def upstream_pure(atoms) -> dict[str, np.ndarray]:
    """Upstream's pure-torch graph: per-centre sorted bond lengths, centres, sorted cosines."""
    from alignn.torch_graph_builder import build_pure_torch_graph

    g, lg = build_pure_torch_graph(atoms, two_body_cutoff=CUTOFF, max_neighbors=MAX_NEIGHBORS)
    centre = g.src.numpy()
    length = g.edata["r"].norm(dim=1).numpy().astype(np.float64)
    return {
        "centre": np.sort(centre),
        "length": lengths_by_centre(centre, length),
        "cos": quantised(lg.edata["h"].numpy()),
    }


def reference(root: Path) -> dict[str, np.ndarray]:
    """All arrays of the fixture, concatenated over the structures with ``*_ptr`` offsets."""
    import alignn
    from jarvis.io.vasp.inputs import Poscar

    names = sample_files(root)
    parts: dict[str, list[np.ndarray]] = {}
    for name in names:
        atoms = Poscar.from_file(str(root / "structures" / name)).atoms
        default, pure = upstream_default(atoms), upstream_pure(atoms)
        for key, value in [
            ("kn_edges", default["edges"]),
            ("kn_cos", default["cos"]),
            ("pure_centre", pure["centre"]),
            ("pure_length", pure["length"]),
            ("pure_cos", pure["cos"]),
        ]:
            parts.setdefault(key, []).append(value)
    out: dict[str, np.ndarray] = {
        "names": np.array(names),
        "alignn_version": np.array(alignn.__version__),
        "settings": np.array([CUTOFF, MAX_NEIGHBORS]),
    }
    for key, values in parts.items():
        out[f"{key}_ptr"] = np.concatenate([[0], np.cumsum([len(x) for x in values])])
        flat = np.concatenate(values)
        if key.endswith("_cos"):  # sorted per structure: small non-negative steps compress well
            steps = [np.diff(x, prepend=0) for x in values]
            out[key] = np.concatenate(steps).astype(np.int32)
        elif key in ("kn_edges", "pure_centre"):
            out[key] = flat.astype(np.int16)
        else:
            out[key] = flat.astype(np.float32)
    return out


def load(path: Path) -> list[dict[str, np.ndarray]]:
    """The fixture as one dict per structure (``name``, ``kn_edges``, ``kn_cos``, ...)."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    rows = []
    for s, name in enumerate(data["names"].tolist()):
        row: dict = {"name": name}
        for key in ("kn_edges", "kn_cos", "pure_centre", "pure_length", "pure_cos"):
            ptr = data[f"{key}_ptr"]
            part = data[key][ptr[s] : ptr[s + 1]]
            row[key] = np.cumsum(part.astype(np.int64)) if key.endswith("_cos") else part
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, default=HERE / "reference.npz")
    args = parser.parse_args()
    data = reference(args.root)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **data)
    tmp.replace(args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): {len(data['names'])} "
        f"structures, {len(data['kn_edges'])} k-nearest edges, {len(data['kn_cos'])} cosines; "
        f"pure {len(data['pure_length'])} edges, {len(data['pure_cos'])} cosines "
        f"(alignn {data['alignn_version']})"
    )


if __name__ == "__main__":
    main()
