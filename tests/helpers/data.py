"""Builders of small on-disk datasets in the exact layouts the loaders read."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from fusion_tuner.data.demo import generate_demo


def jarvis_records(n: int = 40, seed: int = 0) -> list[dict]:
    """Demo crystals as JARVIS ``dft_3d`` records (``jid``, ``atoms``, a few numeric keys)."""
    out = []
    for i, c in enumerate(generate_demo(n, seed)):
        out.append(
            {
                "jid": f"JVASP-{1000 + i}",
                "formula": "".join(c.elements),
                "atoms": {
                    "lattice_mat": c.lattice.tolist(),
                    "coords": c.cart.tolist(),
                    "elements": c.elements,
                    "cartesian": True,
                    "props": [""] * len(c.elements),
                },
                "optb88vdw_bandgap": round(c.target, 4) if i % 7 else "na",
                "formation_energy_peratom": -0.1 * i,
                "spg_symbol": "Fm-3m",
            }
        )
    return out


def write_jarvis_store(store: Path, records: list[dict], name: str = "dft_3d") -> Path:
    """Write ``records`` where ``jarvis.db.figshare.data(name, store_dir=store)`` finds them."""
    from jarvis.db.figshare import get_db_info

    tag = get_db_info()[name][1]
    store.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(store / f"{tag}.zip", "w") as zf:
        zf.writestr(tag, json.dumps(records))
    return store


def write_folder(root: Path, n: int = 30, broken: int = 0, with_text: bool = True) -> Path:
    """An ALIGNN-style folder: POSCAR files + id_prop.csv (+ descriptions.csv)."""
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    root.mkdir(parents=True, exist_ok=True)
    rows, texts = [], []
    for i, c in enumerate(generate_demo(n, 3)):
        name = f"POSCAR-demo-{i}.vasp"
        atoms = Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
        Poscar(atoms).write_file(str(root / name))
        rows.append(f"{name},{c.target:.5f}")
        texts.append(f'demo-{i},"{c.text}"')
    for j in range(broken):
        (root / f"broken-{j}.vasp").write_text("this is not a POSCAR\n")
        rows.append(f"broken-{j}.vasp,1.0")
    (root / "id_prop.csv").write_text("\n".join(rows) + "\n")
    if with_text:
        (root / "descriptions.csv").write_text("id,description\n" + "\n".join(texts) + "\n")
    return root


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def wandb_offline_records(run_dir: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Parse the offline ``run-*.wandb`` file(s) of a run (a LevelDB-style log of protobufs).

    wandb's core process writes the file asynchronously and may still be flushing it when
    ``finish()`` has returned, so this re-reads until every file ends with its exit record (or
    ``timeout`` passes; then the caller's assertions see what is there).

    Returns {"history": [dict], "summary": dict, "run": [RunRecord], "exit": [exit codes]}.
    """
    import time

    deadline = time.time() + timeout
    while True:
        out = _parse_wandb_files(run_dir)
        if (out["files"] and len(out["exit"]) == len(out["files"])) or time.time() > deadline:
            return out
        time.sleep(0.5)


def _parse_wandb_files(run_dir: Path) -> dict[str, Any]:
    import struct

    from wandb.proto import wandb_internal_pb2

    out: dict[str, Any] = {"history": [], "summary": {}, "run": [], "exit": [], "files": []}
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        out["files"].append(path)
        raw, pos, block, buf = path.read_bytes(), 7, 32768, b""
        while pos + 7 <= len(raw):
            off = pos % block
            if block - off < 7:
                pos += block - off
                continue
            _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
            if length == 0 and kind == 0:
                pos += block - off
                continue
            data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
            if kind in (2, 3):
                buf = data if kind == 2 else buf + data
                continue
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf + data if kind == 4 else data)
            which = rec.WhichOneof("record_type")
            if which == "history":
                out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
            elif which == "summary":
                out["summary"].update(
                    {_key(i): json.loads(i.value_json) for i in rec.summary.update}
                )
            elif which == "run":
                out["run"].append(rec.run)
            elif which == "exit":
                out["exit"].append(rec.exit.exit_code)
    return out


# ------------------------------------------------------------------------------ CIF structures
# Rutile TiO2 (P4_2/mnm) as crystallographers write it: numbered symmetry operations with
# spaces, standard uncertainties, and labels that are not element symbols ("Ob" is oxygen).
RUTILE_CIF = """data_TiO2_rutile
_symmetry_space_group_name_H-M 'P 42/m n m'
_cell_length_a 4.594(3)
_cell_length_b 4.594(3)
_cell_length_c 2.959(2)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
 _space_group_symop_id
 _space_group_symop_operation_xyz
  1 'x, y, z'
  2 '-x, -y, -z'
  3 '-y+1/2, x+1/2, z+1/2'
  4 'y+1/2, -x+1/2, -z+1/2'
  5 '-x, -y, z'
  6 'x, y, -z'
  7 'y+1/2, -x+1/2, z+1/2'
  8 '-y+1/2, x+1/2, -z+1/2'
  9 'x+1/2, -y+1/2, -z+1/2'
  10 '-x+1/2, y+1/2, z+1/2'
  11 '-y, -x, -z'
  12 'y, x, z'
  13 '-x+1/2, y+1/2, -z+1/2'
  14 'x+1/2, -y+1/2, z+1/2'
  15 'y, x, -z'
  16 '-y, -x, z'
loop_
 _atom_site_label
 _atom_site_type_symbol
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
 Tia Ti4+ 0.0 0.0 0.0 1.0
 Ob O2- 0.3053(2) 0.3053(2) 0.0 1.0
"""

# Wurtzite ZnO (P6_3mc), symmetry operations under the older _symmetry_equiv_pos_as_xyz name.
WURTZITE_CIF = """data_ZnO
_symmetry_space_group_name_H-M 'P 63 m c'
_cell_length_a 3.25
_cell_length_b 3.25
_cell_length_c 5.207
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 120
loop_
 _symmetry_equiv_pos_as_xyz
 'x,y,z'
 'x-y,x,z+1/2'
 '-y,x-y,z'
 '-x,-y,z+1/2'
 '-x+y,-x,z'
 'y,-x+y,z+1/2'
 'y,x,z+1/2'
 'x,x-y,z'
 'x-y,-y,z+1/2'
 '-y,-x,z'
 '-x,-x+y,z+1/2'
 '-x+y,y,z'
loop_
 _atom_site_label
 _atom_site_type_symbol
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 Zn1 Zn 0.33333 0.66667 0.0
 O1 O 0.33333 0.66667 0.382
"""


def _xyz(rotation, translation) -> str:
    from fractions import Fraction

    parts = []
    for row, shift in zip(rotation, translation, strict=True):
        term = "".join(f"{'+' if c > 0 else '-'}{v}" for c, v in zip(row, "xyz", strict=True) if c)
        frac = Fraction(float(shift) % 1.0).limit_denominator(12)
        parts.append(term.lstrip("+") + (f"+{frac}" if frac else ""))
    return ",".join(parts)


def nacl_cif(with_ops: bool = True, na_occupancy: float = 1.0, a: float = 5.64) -> str:
    """Rock-salt NaCl in Fm-3m: two listed sites, 8 atoms in the conventional cell.

    With ``with_ops`` the 192 operations of the group are listed (made with spglib's tables);
    without, the CIF gives only the Hermann-Mauguin symbol, as many CIFs do.
    """
    lines = ["data_NaCl", "_symmetry_space_group_name_H-M 'F m -3 m'"]
    lines += [f"_cell_length_{k} {a}" for k in "abc"]
    lines += [f"_cell_angle_{k} 90" for k in ("alpha", "beta", "gamma")]
    if with_ops:
        import spglib

        sym = spglib.get_symmetry_from_database(523)  # Hall number of F m -3 m
        lines += ["loop_", " _space_group_symop_operation_xyz"]
        lines += [
            f" '{_xyz(r, t)}'" for r, t in zip(sym["rotations"], sym["translations"], strict=True)
        ]
    lines += [
        "loop_",
        " _atom_site_label",
        " _atom_site_type_symbol",
        " _atom_site_fract_x",
        " _atom_site_fract_y",
        " _atom_site_fract_z",
        " _atom_site_occupancy",
        f" Na1 Na 0 0 0 {na_occupancy}",
        " Cl1 Cl 0.5 0.5 0.5 1",
    ]
    return "\n".join(lines) + "\n"


def p1_cif(lattice, cart, elements, name: str = "demo") -> str:
    """A P1 CIF of a structure (as pymatgen writes them, cell given by parameters)."""
    import numpy as np

    lattice = np.asarray(lattice, dtype=float)
    lengths = np.linalg.norm(lattice, axis=1)
    unit = lattice / lengths[:, None]
    a, b, c = unit
    angles = np.degrees(np.arccos([b @ c, a @ c, a @ b]))
    # the frame of the parameters differs from the matrix's: place atoms by fractional position
    frac = np.asarray(cart, dtype=float) @ np.linalg.inv(lattice)
    lines = [f"data_{name}", "_symmetry_space_group_name_H-M 'P 1'"]
    lines += [f"_cell_length_{k} {v:.10f}" for k, v in zip("abc", lengths, strict=True)]
    lines += [
        f"_cell_angle_{k} {v:.10f}" for k, v in zip(("alpha", "beta", "gamma"), angles, strict=True)
    ]
    lines += [
        "loop_",
        " _symmetry_equiv_pos_as_xyz",
        "  'x, y, z'",
        "loop_",
        " _atom_site_type_symbol",
        " _atom_site_label",
        " _atom_site_fract_x",
        " _atom_site_fract_y",
        " _atom_site_fract_z",
        " _atom_site_occupancy",
    ]
    lines += [
        f"  {el}  {el}{i}  {f[0]:.10f}  {f[1]:.10f}  {f[2]:.10f}  1"
        for i, (el, f) in enumerate(zip(elements, frac, strict=True))
    ]
    return "\n".join(lines) + "\n"


def write_cif_folder(root: Path, n: int = 12, names: list[str] | None = None) -> Path:
    """An ALIGNN-style folder of P1 CIF files (demo crystals) + id_prop.csv, no descriptions."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, c in enumerate(generate_demo(n, 5)):
        name = names[i] if names and i < len(names) else f"demo-{i}.cif"
        (root / name).write_text(p1_cif(c.lattice, c.cart, c.elements, f"demo{i}"))
        rows.append(f"{name},{c.target:.5f}")
    (root / "id_prop.csv").write_text("\n".join(rows) + "\n")
    return root


# rock salt as a POSCAR (a primitive fcc cell, 2 atoms)
NACL_POSCAR = """NaCl
1.0
0.0 2.82 2.82
2.82 0.0 2.82
2.82 2.82 0.0
Na Cl
1 1
Cartesian
0.0 0.0 0.0
2.82 2.82 2.82
"""
