"""Tables as prediction inputs: rows with a structure column -> crystals.

STOPGAP, to be switched to the table data source (``fusion_tuner/data/tables.py`` and
``data/structures.py``, another branch) once it is on main: :func:`read_table_crystals` is the
one function prediction calls, so the switch replaces its body with ``tables.read_table`` plus
``structures.parse_structure``. Until then it reads a CSV (header row), a JSON list of records
or JSON lines, optionally a one-file ``.zip``; structures are CIF or POSCAR text, JARVIS
``Atoms`` dicts or pymatgen ``Structure`` dicts, parsed with jarvis-tools.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.data import records
from fusion_tuner.data.records import Crystal

STRUCTURE_COLUMNS = ("structure", "cif", "atoms", "poscar")
ID_COLUMNS = ("id", "jid", "material_id")


def _rows(path: Path) -> list[dict[str, Any]]:
    text, inner = records._open_text(path)
    if inner.lower().endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    if inner.lower().endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    raw = json.loads(text)
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ValueError("a JSON table must be a list of records ({column: value})")
    return raw


def _parse(value: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict) and "lattice_mat" in value:
        c = records.crystal_from_jarvis_atoms("", value, math.nan)
        return c.lattice, c.cart, c.elements
    if isinstance(value, dict) and "sites" in value:  # a pymatgen Structure.as_dict()
        lattice = np.asarray(value["lattice"]["matrix"], dtype=np.float64)
        cart = np.asarray([s["xyz"] for s in value["sites"]], dtype=np.float64)
        elements = [s["species"][0]["element"] for s in value["sites"]]
        return lattice, cart, elements
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"no structure in the cell ({type(value).__name__})")
    text = value.replace("\\n", "\n") if "\n" not in value else value
    atoms = (
        Atoms.from_cif(from_string=text, use_cif2cell=False)  # in process, no shell
        if "_cell_length_a" in text
        else Poscar.from_string(text).atoms
    )
    return (
        np.asarray(atoms.lattice_mat, dtype=np.float64),
        np.asarray(atoms.cart_coords, dtype=np.float64),
        list(atoms.elements),
    )


def read_table_crystals(
    path: Path, target: str | None = None
) -> tuple[list[Crystal], list[tuple[str, str]]]:
    """The crystals of a table (id: the first of id, jid, material_id, else the row number;
    target: the column ``target`` when the table has it, else NaN) and what was skipped."""
    try:
        rows = _rows(path)
    except Exception as exc:  # csv, json and zip errors alike: the file is unusable
        return [], [(str(path), f"unreadable table: {type(exc).__name__}: {exc}")]
    columns = list(rows[0]) if rows else []
    structure = next((c for c in STRUCTURE_COLUMNS if c in columns), None)
    if structure is None:
        return [], [
            (str(path), f"no structure column ({', '.join(STRUCTURE_COLUMNS)}) in {columns}")
        ]
    id_column = next((c for c in ID_COLUMNS if c in columns), None)
    crystals, skipped = [], []
    for number, row in enumerate(rows):
        cid = str(row[id_column]).strip() if id_column else str(number)
        try:
            lattice, cart, elements = _parse(row.get(structure))
        except Exception as exc:  # jarvis' parsers raise anything from IndexError up
            skipped.append(
                (f"{path.name}:{cid}", f"unreadable {structure}: {type(exc).__name__}: {exc}")
            )
            continue
        value = records._as_float(row.get(target)) if target else None
        crystals.append(Crystal(cid, lattice, cart, elements, math.nan if value is None else value))
    return crystals, skipped
