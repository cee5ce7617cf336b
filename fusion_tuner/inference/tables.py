"""Tables as prediction inputs: rows with a structure column -> crystals.

Read by the table data source (:func:`fusion_tuner.data.tables.read_table`: CSV, JSON in its
three forms, JSON lines; optionally ``.gz`` or a one-file ``.zip``) and its structure parser
(:func:`fusion_tuner.data.structures.parse_structure`: CIF or POSCAR text, JARVIS ``Atoms``
or pymatgen ``Structure`` dicts). Without a config to name columns, the structure column is
the first of ``structure``, ``cif``, ``atoms``, ``poscar`` (as ``dataset=table`` defaults),
the id the first of ``id``, ``jid``, ``material_id`` (else the row number), and the target the
column named like the run's ``dataset.target``, when the table has one.
"""

from __future__ import annotations

import math
from pathlib import Path

from fusion_tuner.data import structures, tables
from fusion_tuner.data.records import Crystal, _as_float
from fusion_tuner.errors import DataError

ID_COLUMNS = ("id", "jid", "material_id")


def read_table_crystals(
    path: Path, target: str | None = None
) -> tuple[list[Crystal], list[tuple[str, str]]]:
    """The crystals of a table and what was skipped (``(where, reason)``)."""
    try:
        rows, columns = tables.read_table(path)
    except DataError as exc:
        return [], [(str(path), f"unreadable table: {exc}")]
    structure = next((c for c in tables.STRUCTURE_COLUMNS if c in columns), None)
    if structure is None:
        wanted = ", ".join(tables.STRUCTURE_COLUMNS)
        return [], [(str(path), f"no structure column ({wanted}) among {columns}")]
    id_column = next((c for c in ID_COLUMNS if c in columns), None)
    crystals, skipped = [], []
    for number, row in enumerate(rows):
        cid = str(row.get(id_column) or "").strip() if id_column else str(number)
        if not cid:
            skipped.append((f"{path.name}: row {number}", f"empty {id_column} column"))
            continue
        try:
            _, (lattice, cart, elements) = structures.parse_structure(row.get(structure))
        except structures.StructureError as exc:
            skipped.append((f"{path.name}:{cid}", f"unreadable {structure}: {exc}"))
            continue
        value = _as_float(row.get(target)) if target else None
        crystals.append(Crystal(cid, lattice, cart, elements, math.nan if value is None else value))
    return crystals, skipped
