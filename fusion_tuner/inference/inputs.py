"""What to predict on: paths -> :class:`~fusion_tuner.data.records.Crystal` records.

A path is a structure file (POSCAR / ``*.vasp`` / ``*.poscar`` / ``CONTCAR`` / ``*.cif``), a
folder of them, an ALIGNN folder (``id_prop.csv`` with ``file,target`` rows, read exactly as
``dataset=folder`` reads it, so its targets and its ``descriptions.csv`` come along), or a
table with a structure column (CSV / JSON / JSON lines). A crystal's id is its file name (the
ALIGNN convention; ``POSCAR-JVASP-10.vasp`` matches ``JVASP-10`` in descriptions files), or a
table's id column. Nothing unreadable stops the others: it is listed with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fusion_tuner import paths as data_paths
from fusion_tuner.data import records
from fusion_tuner.data.records import Crystal

STRUCTURE_PREFIXES = ("POSCAR", "CONTCAR")
TABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson")


@dataclass
class Inputs:
    """The crystals read from the given paths, in order, and what was skipped and why.

    Attributes:
        crystals: one per readable structure; ``target`` is NaN when the input has none.
        skipped: ``(id or path, reason)`` of everything that could not be read.
    """

    crystals: list[Crystal] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labelled(self) -> bool:
        """True when every crystal carries a target (an ALIGNN folder's ``id_prop.csv``)."""
        return bool(self.crystals) and all(math.isfinite(c.target) for c in self.crystals)

    def add(self, crystal: Crystal, source: Path) -> None:
        if any(c.id == crystal.id for c in self.crystals):
            self.skipped.append((str(source), f"duplicate id {crystal.id!r} (already read)"))
        else:
            self.crystals.append(crystal)


def is_structure_file(path: Path) -> bool:
    name = path.name
    return name.lower().endswith(records.STRUCTURE_SUFFIXES) or name.startswith(STRUCTURE_PREFIXES)


def is_table_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".zip").removesuffix(".gz")
    return name.endswith(TABLE_SUFFIXES)


def read_structure_file(path: Path) -> Crystal:
    """One structure file as an unlabelled crystal named by its file name."""
    _, (lattice, cart, elements) = records._read_structure(path)
    return Crystal(path.name, lattice, cart, elements, math.nan)


def _read_alignn_folder(root: Path, out: Inputs, allow_outside: bool) -> None:
    crystals, report = records.load_folder(root, None, allow_outside)
    for name, why in report.unreadable:
        out.skipped.append((str(root / name), why))
    if report.missing_target:
        out.skipped.append(
            (str(root / "id_prop.csv"), f"{report.missing_target} rows without a numeric target")
        )
    for c in crystals:
        out.add(c, root / c.id)


def _read_file(path: Path, out: Inputs) -> None:
    try:
        out.add(read_structure_file(path), path)
    except Exception as exc:  # the structure parsers raise anything from IndexError up
        out.skipped.append((str(path), f"unreadable: {type(exc).__name__}: {exc}"))


def read_inputs(
    paths: Sequence[str | Path], target: str | None = None, allow_outside: bool = False
) -> Inputs:
    """Read every path (see the module docstring); nothing raises for a bad file. ``target``:
    the column of a table that holds the known value (carried into the output when present).
    ``allow_outside``: let an ``id_prop.csv`` name files outside its folder (else skipped)."""
    from fusion_tuner.inference.tables import read_table_crystals

    out = Inputs()
    for raw in paths:
        path = data_paths.resolve(raw)
        if path.is_dir():
            if (path / "id_prop.csv").is_file():
                _read_alignn_folder(path, out, allow_outside)
                continue
            files = sorted(p for p in path.iterdir() if p.is_file() and is_structure_file(p))
            if not files:
                out.skipped.append(
                    (
                        str(path),
                        "no structure files (POSCAR*, CONTCAR*, *.vasp, *.poscar, *.cif) "
                        "and no id_prop.csv",
                    )
                )
            for f in files:
                _read_file(f, out)
        elif path.is_file() and is_structure_file(path):
            _read_file(path, out)
        elif path.is_file() and is_table_file(path):
            crystals, skipped = read_table_crystals(path, target)
            out.skipped.extend(skipped)
            for c in crystals:
                out.add(c, path)
        elif path.is_file():
            out.skipped.append(
                (
                    str(path),
                    "not a structure file (POSCAR*, CONTCAR*, *.vasp, *.poscar, *.cif) "
                    "nor a table (.csv, .json, .jsonl)",
                )
            )
        else:
            out.skipped.append((str(path), "not found"))
    return out
