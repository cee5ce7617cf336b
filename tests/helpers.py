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
