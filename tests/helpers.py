"""Builders of small on-disk datasets in the exact layouts the loaders read."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from fusion_tuner.data.demo import generate_demo


def jarvis_records(n: int = 40, seed: int = 0) -> list[dict]:
    """Demo crystals as JARVIS ``dft_3d`` records (``jid``, ``atoms``, a few numeric keys)."""
    out = []
    for i, c in enumerate(generate_demo(n, seed)):
        out.append({
            "jid": f"JVASP-{1000 + i}",
            "formula": "".join(c.elements),
            "atoms": {
                "lattice_mat": c.lattice.tolist(), "coords": c.cart.tolist(),
                "elements": c.elements, "cartesian": True, "props": [""] * len(c.elements),
            },
            "optb88vdw_bandgap": round(c.target, 4) if i % 7 else "na",
            "formation_energy_peratom": -0.1 * i,
            "spg_symbol": "Fm-3m",
        })  # fmt: skip
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
