"""The ``table`` source: one file of rows with a structure column (``dataset=table``).

Many public crystal data sets ship this way: CDVAE's MP-20, Perov-5 and Carbon-24 (CSV with a
CIF text column and an unnamed index column), matbench (JSON of pymatgen Structure dicts in
pandas' ``orient="split"`` form), JARVIS dumps (a JSON list of records with an ``atoms`` dict).

Formats, chosen by the file name: ``.csv`` (a header row), ``.json`` (a list of records;
``{"columns": [...], "index": [...], "data": [[...]]}`` as pandas/matbench write with
``orient="split"``; or ``{column: {row: value}}``, pandas' default), ``.jsonl`` / ``.ndjson``
(one record per line); each optionally compressed as ``.gz`` or as a ``.zip`` holding one file.
In the two pandas forms the row labels become a column named ``index``.

Columns: ``dataset.structure_column`` (default: the first of ``structure``, ``cif``, ``atoms``,
``poscar`` that exists) holds CIF text, POSCAR text, a JARVIS Atoms dict or a pymatgen
Structure dict, detected row by row and counted per kind; ``dataset.target`` must hold numbers
(``"na"``, empty and non-finite values are dropped and counted); ``dataset.id_column`` names
each crystal, default the row number (0 for the first data row). An unknown column fails at
once with the list of columns the file has.
"""

from __future__ import annotations

import contextlib
import csv
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusion_tuner.data import structures
from fusion_tuner.data.records import (
    MAX_TABLE_BYTES,
    Crystal,
    LoadReport,
    _as_float,
    decode_utf8,
    gunzip_capped,
    read_member,
)
from fusion_tuner.errors import DataError

STRUCTURE_COLUMNS = ("structure", "cif", "atoms", "poscar")
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@contextlib.contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """CIF texts can exceed csv's default 128 kB field limit; raise it for one read only."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _file_text(path: Path, limit: int) -> tuple[str, str]:
    """(text, format) of a table file, unpacking ``.gz`` / ``.zip`` up to ``limit`` bytes."""
    try:
        data, inner = read_member(path, limit)
    except OSError as exc:
        raise DataError(f"cannot read dataset.path={path}: {exc}") from None
    shown = str(path) if inner == path.name else f"{path}:{inner}"
    if inner.lower().endswith(".gz"):
        try:
            data = gunzip_capped(data, limit, shown)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{shown} is not a readable gzip file ({exc})") from None
        inner = inner[:-3]
    suffix = Path(inner).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(
            f"{shown}: cannot tell the table format from {inner!r}; name the file *.csv, *.json "
            "or *.jsonl (optionally .gz or .zip)"
        )
    return decode_utf8(data, shown), FORMATS[suffix]


def _csv_rows(text: str, shown: str) -> tuple[list[dict[str, Any]], list[str]]:
    with _csv_field_limit(1 << 30):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise DataError(f"{shown}: CSV line {reader.line_num}: {exc}") from None
    return rows, list(reader.fieldnames or [])


def _json_rows(obj: Any, shown: str) -> tuple[list[dict[str, Any]], list[str]]:
    if isinstance(obj, list):
        bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataError(f"{shown}: item {bad} of the JSON list is not a record (a dict)")
        columns = list(dict.fromkeys(k for rec in obj for k in rec))
        return obj, columns
    if isinstance(obj, dict) and "columns" in obj and "data" in obj:  # pandas orient="split"
        columns = [str(c) for c in obj["columns"]]
        try:
            rows = [dict(zip(columns, values, strict=True)) for values in obj["data"]]
            if "index" in obj and "index" not in columns:
                for row, label in zip(rows, obj["index"], strict=True):
                    row["index"] = label
                columns.append("index")
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{shown}: rows of 'data' do not match 'columns'/'index' ({exc})"
            ) from None
        return rows, columns
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        columns = [str(c) for c in obj]  # pandas orient="columns": {column: {row: value}}
        labels = list(dict.fromkeys(k for col in obj.values() for k in col))
        rows = [{"index": label} | {c: obj[c].get(label) for c in obj} for label in labels]
        return rows, columns + (["index"] if "index" not in columns else [])
    raise DataError(
        f"{shown}: expected a JSON list of records, pandas' orient='split' form "
        "({'columns', 'index', 'data'}) or {column: {row: value}}"
    )


def read_table(path: Path, limit: int = MAX_TABLE_BYTES) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows (dicts) and column names, in file order, of a CSV / JSON / JSON-lines table.

    Raises:
        DataError: an unreadable file, or one that unpacks to more than ``limit`` bytes
            (``dataset.max_table_bytes``).
    """
    text, fmt = _file_text(path, limit)
    if fmt == "csv":
        return _csv_rows(text, str(path))
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = structures.parse_json(line)
            except ValueError as exc:
                raise DataError(f"{path}: line {number} is not JSON ({exc})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}: line {number} is not a JSON object")
            rows.append(rec)
        return rows, list(dict.fromkeys(k for rec in rows for k in rec))
    try:
        obj = structures.parse_json(text)
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return _json_rows(obj, str(path))


def _shown_columns(columns: list[str]) -> str:
    return ", ".join(repr(c) if c else "'' (unnamed index)" for c in columns)


def _numeric_columns(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    sample = rows[:2000]
    return [c for c in columns if any(_as_float(r.get(c)) is not None for r in sample)]


def _pick_columns(
    path: Path,
    rows: list[dict[str, Any]],
    columns: list[str],
    target: str,
    structure_column: str | None,
    id_column: str | None,
) -> str:
    """Check every named column; return the structure column (explicit or by convention)."""
    if structure_column is None:
        structure_column = next((c for c in STRUCTURE_COLUMNS if c in columns), None)
        if structure_column is None:
            raise DataError(
                f"{path} has none of the conventional structure columns "
                f"({', '.join(STRUCTURE_COLUMNS)}); set dataset.structure_column to one of: "
                f"{_shown_columns(columns)}"
            )
    for key, name in (
        ("structure_column", structure_column),
        ("target", target),
        ("id_column", id_column),
    ):
        if name is not None and name not in columns:
            raise DataError(
                f"dataset.{key}={name!r} is not a column of {path}; its columns are: "
                f"{_shown_columns(columns)}"
            )
    if rows and target not in _numeric_columns(rows, [target]):
        numeric = [c for c in _numeric_columns(rows, columns) if c]
        raise DataError(
            f"dataset.target={target!r} holds no numbers in {path}; numeric columns: "
            f"{', '.join(numeric) or '(none)'}"
        )
    return structure_column


def load_table(
    path: Path,
    target: str,
    structure_column: str | None,
    id_column: str | None,
    limit: int | None,
    max_bytes: int = MAX_TABLE_BYTES,
) -> tuple[list[Crystal], LoadReport]:
    """Load a table (see the module docstring); unreadable structures are counted, not fatal.
    ``max_bytes``: ``dataset.max_table_bytes``, the most the file may unpack to."""
    if not path.is_file():
        raise DataError(f"dataset.path={path} is not a file")
    rows, columns = read_table(path, max_bytes)
    column = _pick_columns(path, rows, columns, target, structure_column, id_column)
    report = LoadReport(source=f"table:{path}", n_raw=len(rows))
    crystals: list[Crystal] = []
    for number, row in enumerate(rows):
        value = _as_float(row.get(target))
        if not report.admit(value, len(crystals), limit):
            continue
        raw_id = row.get(id_column) if id_column else number
        cid = "" if raw_id is None else str(raw_id).strip()
        if not cid:
            report.unreadable.append((f"row {number}", f"empty dataset.id_column={id_column!r}"))
            continue
        try:
            kind, (lattice, cart, elements) = structures.parse_structure(row.get(column))
        except structures.StructureError as exc:
            report.unreadable.append((cid, str(exc)))
            continue
        report.count_kind(kind)
        crystals.append(Crystal(cid, lattice, cart, elements, value))
    return crystals, report
