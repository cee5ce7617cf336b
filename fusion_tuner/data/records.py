"""Raw crystals from each source: JARVIS (figshare cache), ALIGNN-style folders, text files.

Every loader returns plain :class:`Crystal` records plus a :class:`LoadReport` that counts what
was dropped and why; nothing is dropped uncounted. Structure files are parsed in process by
:mod:`fusion_tuner.data.structures` (CIF with gemmi: no shell, no temporary files). Text files
must be UTF-8; a byte that is not fails with the file and line (:func:`decode_utf8`).
:func:`resolve_duplicates` applies ``dataset.duplicates`` to the records of every source.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import math
import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.data import structures
from fusion_tuner.errors import DataError
from fusion_tuner.paths import default_cache_root

STRUCTURE_SUFFIXES = (".vasp", ".poscar", ".cif")
DUPLICATE_POLICIES = ("error", "first", "drop")


@dataclass
class Crystal:
    """One crystal: geometry, target and (optionally) its own description."""

    id: str
    lattice: np.ndarray  # (3, 3), rows are lattice vectors, Angstrom
    cart: np.ndarray  # (N, 3) Cartesian positions, Angstrom
    elements: list[str]
    target: float
    text: str | None = None


@dataclass
class LoadReport:
    """What a loader kept and dropped, by reason."""

    source: str
    n_raw: int = 0
    missing_target: int = 0  # "na" or not finite
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    limited: int = 0  # usable records left out by dataset.limit / budget.max_structures
    structure_kinds: dict[str, int] = field(default_factory=dict)  # e.g. {"cif": 3787}
    # dataset.duplicates: {"policy", "duplicated_ids", "dropped"} (see resolve_duplicates)
    duplicates: dict[str, Any] = field(default_factory=dict)

    def admit(self, value: float | None, kept: int, limit: int | None) -> bool:
        """Count a record without a usable target or beyond the limit; True if it is to be read."""
        if value is None:
            self.missing_target += 1
            return False
        if limit is not None and kept >= limit:
            self.limited += 1
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_raw": self.n_raw,
            "missing_target": self.missing_target,
            "unreadable": [list(x) for x in self.unreadable],
            "limited": self.limited,
            "structure_kinds": dict(self.structure_kinds),
            "duplicates": dict(self.duplicates),
        }

    def count_kind(self, kind: str) -> None:
        self.structure_kinds[kind] = self.structure_kinds.get(kind, 0) + 1


def canonical_id(name: str) -> str:
    """``POSCAR-JVASP-10.vasp`` -> ``JVASP-10``: the form JARVIS splits and text files use."""
    stem = Path(name).name
    for suffix in STRUCTURE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem.removeprefix("POSCAR-")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def numeric_keys(records: list[dict[str, Any]]) -> list[str]:
    """Keys holding a number in at least one record (the valid ``dataset.target`` choices)."""
    keys: set[str] = set()
    for rec in records[:2000]:
        keys.update(
            k for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
    return sorted(keys)


def crystal_from_jarvis_atoms(cid: str, atoms: dict[str, Any], target: float) -> Crystal:
    """Convert a JARVIS ``atoms`` dict (``lattice_mat``, ``coords``, ``elements``, ``cartesian``).

    Raises:
        ValueError: a malformed dict (:class:`~fusion_tuner.data.structures.StructureError`).
    """
    lattice, cart, elements = structures.from_jarvis_atoms(atoms)
    return Crystal(id=cid, lattice=lattice, cart=cart, elements=elements, target=target)


# a JARVIS store folder holding this file is read without jarvis-tools (see load_jarvis)
RECORDS_FILE = "records.json.zip"


def read_jarvis_records(name: str, store_dir: Path) -> list[dict[str, Any]]:
    """The raw records of JARVIS data set ``name`` in ``store_dir``.

    A folder holding :data:`RECORDS_FILE` (one JSON list of records in the figshare layout,
    zipped; the bundled ``sample://jarvis_dft3d_mini/store_*`` folders) is read as it is,
    whatever ``name`` and the jarvis-tools version, with no download. Otherwise
    ``jarvis.db.figshare.data(name, store_dir=...)`` reads it (downloaded once, then cached).
    """
    if (store_dir / RECORDS_FILE).is_file():
        raw = json.loads(_open_text(store_dir / RECORDS_FILE)[0])
        if not isinstance(raw, list):
            raise DataError(f"{store_dir / RECORDS_FILE} is not a JSON list of JARVIS records")
        return raw
    from jarvis.db.figshare import data

    store_dir.mkdir(parents=True, exist_ok=True)
    try:
        return data(name, store_dir=str(store_dir))
    except Exception as exc:  # network errors, missing dataset names, corrupt zips
        raise DataError(
            f"could not load JARVIS dataset {name!r} into {store_dir} ({type(exc).__name__}: "
            f"{exc}). Check dataset.name, the network, or place the figshare zip there "
            f"(python -m fusion_tuner.data download {name} --to {store_dir} does that, "
            "resumably; see dataset.jarvis_dir in docs/data.md)."
        ) from exc


def load_jarvis(
    name: str, target: str, store_dir: Path, limit: int | None
) -> tuple[list[Crystal], LoadReport]:
    """Load JARVIS data set ``name`` from ``store_dir`` (see :func:`read_jarvis_records`).

    Records whose target is ``"na"`` or not finite are dropped and counted; an unknown target
    fails with the list of numeric keys.
    """
    raw = read_jarvis_records(name, store_dir)
    remember_numeric_keys(name, store_dir, numeric_keys(raw))
    return _jarvis_crystals(raw, name, str(store_dir), target, limit)


def _keys_file(name: str, store_dir: Path) -> Path:
    """Where the numeric keys of data set ``name`` in ``store_dir`` (as its files are now) are
    remembered, in the cache."""
    import hashlib

    store_dir = Path(store_dir).resolve()
    files = (
        sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in store_dir.iterdir())
        if store_dir.is_dir()
        else []
    )
    digest = hashlib.sha256(json.dumps([name, str(store_dir), files]).encode()).hexdigest()
    return default_cache_root() / "jarvis_keys" / f"{name}-{digest[:16]}.json"


def remember_numeric_keys(name: str, store_dir: Path, keys: list[str]) -> None:
    """Keep ``keys`` (the valid ``dataset.target`` values) so that a later run can refuse a wrong
    target before it creates its run directory and loads the data (best effort)."""
    from fusion_tuner.io import atomic_write_text

    with contextlib.suppress(OSError):
        atomic_write_text(json.dumps(keys), _keys_file(name, store_dir))


def known_numeric_keys(name: str, store_dir: Path) -> list[str] | None:
    """The numeric keys a load of these very files remembered, or None (never loaded here)."""
    try:
        keys = json.loads(_keys_file(name, store_dir).read_text())
    except (OSError, ValueError):
        return None
    return [str(k) for k in keys] if isinstance(keys, list) and keys else None


def target_problem(name: str, store_dir: Path, target: str) -> str | None:
    """The message for a ``dataset.target`` that is not a numeric key of the data set, when its
    keys are known without loading it; else None."""
    keys = known_numeric_keys(name, store_dir)
    if keys is None or target in keys:
        return None
    return _not_a_key(target, name, keys)


def _not_a_key(target: str, name: str, keys: list[str]) -> str:
    return (
        f"dataset.target={target!r} is not a numeric key of JARVIS {name!r}; "
        f"numeric keys: {', '.join(keys)}"
    )


def _jarvis_crystals(
    raw: list[dict[str, Any]], name: str, where: str, target: str, limit: int | None
) -> tuple[list[Crystal], LoadReport]:
    if not raw:
        raise DataError(f"JARVIS dataset {name!r} in {where} is empty")
    if not any(target in rec for rec in raw[:2000]) or target not in numeric_keys(raw):
        raise DataError(_not_a_key(target, name, numeric_keys(raw)))
    report = LoadReport(source=f"jarvis:{name}", n_raw=len(raw))
    crystals: list[Crystal] = []
    for rec in raw:
        value = _as_float(rec.get(target))
        if not report.admit(value, len(crystals), limit):
            continue
        cid = str(rec.get("jid", rec.get("id", len(crystals))))
        try:
            crystals.append(crystal_from_jarvis_atoms(cid, rec["atoms"], value))
            report.count_kind("jarvis_atoms")
        except (KeyError, ValueError, TypeError) as exc:
            report.unreadable.append((cid, f"bad atoms record: {exc}"))
    return crystals, report


def _read_structure(path: Path) -> tuple[str, structures.Arrays]:
    """(kind, arrays) of a structure file: ``.cif`` with gemmi, anything else as a POSCAR.

    The file is read here and parsed from memory: its name never reaches a shell or a parser
    that might pass it on.
    """
    # CIF free text (author names, ...) may be Latin-1; the structure fields are ASCII
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix.lower() == ".cif":
        return "cif", structures.read_cif(text)
    return "poscar", structures.read_poscar(text)


def outside_reason(fname: str) -> str | None:
    """Why an ``id_prop.csv`` entry points outside its folder (absolute, or climbing out with
    ``..``), else None. Lexical: the folder's own symlinks are its owner's choice."""
    if os.path.isabs(fname):
        return "an absolute path"
    parts = Path(os.path.normpath(fname)).parts
    if parts and parts[0] == "..":
        return "a path that leaves the folder (..)"
    return None


def load_folder(
    root: Path, limit: int | None, allow_outside: bool = False
) -> tuple[list[Crystal], LoadReport]:
    """Load ALIGNN's folder format: ``id_prop.csv`` (``file,target``; no header) + structures.

    A structure file is looked up beside ``id_prop.csv``, then in a ``structures/`` subfolder.
    An entry that is an absolute path or leaves the folder is skipped with its reason unless
    ``allow_outside`` (``dataset.allow_outside_paths``). ``descriptions.csv``
    (``id,description``) beside it, when present, supplies the texts.
    """
    id_prop = root / "id_prop.csv"
    if not id_prop.is_file():
        raise DataError(
            f"{id_prop} not found: dataset.root must be a folder holding id_prop.csv "
            "(rows 'structure_file,target', no header)"
        )
    content = decode_utf8(id_prop.read_bytes(), str(id_prop))
    rows = [r for r in csv.reader(io.StringIO(content, newline="")) if r and r[0].strip()]
    report = LoadReport(source=f"folder:{root}", n_raw=len(rows))
    texts = (
        read_descriptions(root / "descriptions.csv")
        if (root / "descriptions.csv").is_file()
        else {}
    )
    crystals: list[Crystal] = []
    for row in rows:
        fname = row[0].strip()
        value = _as_float(row[1]) if len(row) > 1 else None
        if not report.admit(value, len(crystals), limit):
            continue
        outside = outside_reason(fname)
        if outside and not allow_outside:
            report.unreadable.append(
                (
                    fname,
                    f"{outside}: id_prop.csv entries must name files in {root} or its "
                    "structures/ (set dataset.allow_outside_paths=true to allow others)",
                )
            )
            continue
        # allowed: an absolute path as it is, a climbing one from the folder
        candidates = [root / fname] if outside else [root / fname, root / "structures" / fname]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            report.unreadable.append((fname, "structure file not found"))
            continue
        try:
            kind, (lattice, cart, elements) = _read_structure(path)
        except (structures.StructureError, OSError) as exc:
            report.unreadable.append((fname, f"unreadable {path.name}: {exc}"))
            continue
        report.count_kind(kind)
        text = texts.get(fname, texts.get(canonical_id(fname)))
        crystals.append(Crystal(fname, lattice, cart, elements, value, text))
    return crystals, report


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text (a byte-order mark is dropped).

    Raises:
        DataError: naming ``name``, the line and column of the first byte that is not UTF-8.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{name}: line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > NEW)"
        ) from None


# dataset.max_table_bytes' default: what a table file may unpack to.
MAX_TABLE_BYTES = 2 << 30
_CHUNK = 1 << 20


def read_capped(fh: Any, limit: int, shown: str) -> bytes:
    """All of ``fh`` read in chunks, counting: a :class:`DataError` naming ``shown`` and
    ``dataset.max_table_bytes`` as soon as more than ``limit`` bytes come out (sizes in
    headers are not trusted)."""
    chunks, total = [], 0
    while chunk := fh.read(min(_CHUNK, limit + 1 - total)):
        total += len(chunk)
        if total > limit:
            raise DataError(
                f"{shown} unpacks to more than {limit} bytes (dataset.max_table_bytes={limit}); "
                "refused as a likely decompression bomb. Raise dataset.max_table_bytes if the "
                "file really is that large."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def read_member(path: Path, limit: int = MAX_TABLE_BYTES) -> tuple[bytes, str]:
    """Bytes and name of ``path``, or of the single file inside ``path`` when it is a ``.zip``;
    more than ``limit`` bytes (``dataset.max_table_bytes``) is refused, naming the file."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise DataError(f"{path} must hold exactly one file, found {members}")
                with zf.open(members[0]) as fh:
                    return read_capped(fh, limit, f"{path}:{members[0]}"), members[0]
        except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is not a readable zip file ({exc})") from None
    with path.open("rb") as fh:
        return read_capped(fh, limit, str(path)), path.name


def gunzip_capped(data: bytes, limit: int, shown: str) -> bytes:
    """``data`` gunzipped by streaming, refused beyond ``limit`` bytes (see :func:`read_capped`)."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
        return read_capped(fh, limit, shown)


def _open_text(path: Path) -> tuple[str, str]:
    """Return (text, inner name) of ``path`` or of the single member of a zip."""
    data, inner = read_member(path)
    shown = f"{path}:{inner}" if inner != path.name else str(path)
    return decode_utf8(data, shown), inner


def read_descriptions(path: Path, variant: str = "desc_2") -> dict[str, str]:
    """Read id -> description from CSV (``id,description``) or JSON (``{id: text}`` or
    ``{id: {desc_1: ..., desc_2: ...}}``, the variant chosen by ``variant``), zipped or not."""
    if not path.is_file():
        raise DataError(f"descriptions file {path} not found (dataset.descriptions)")
    content, inner = _open_text(path)
    if inner.endswith(".json"):
        try:
            raw = structures.parse_json(content)
        except ValueError as exc:
            raise DataError(f"descriptions file {path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise DataError(
                f"descriptions file {path} holds a JSON {type(raw).__name__}; expected an "
                "object {id: text} or {id: {desc_1: ..., desc_2: ...}}"
            )
        out = {}
        for key, value in raw.items():
            if isinstance(value, dict):
                if variant not in value:
                    raise DataError(
                        f"{path}: entry {key!r} has no {variant!r} (text.describe_variant)"
                    )
                value = value[variant]
            out[str(key)] = str(value)
        return out
    rows = list(csv.reader(io.StringIO(content)))
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["id", "description"]:
        rows = rows[1:]
    return {r[0].strip(): r[1] for r in rows if len(r) >= 2}


ALIGNN_SPLIT_KEYS = {"train": "id_train", "val": "id_val", "test": "id_test"}


def read_split_file(path: Path) -> dict[str, list[str]]:
    """Read a split file in either form, zipped or not:

    * the JARVIS leaderboard's ``{"train": {id: value}, "val": ..., "test": ...}`` (or lists);
    * upstream ALIGNN's ``ids_train_val_test.json``: ``{"id_train": [...], "id_val": [...],
      "id_test": [...]}``.
    """
    if not path.is_file():
        raise DataError(f"split file {path} not found (dataset.split_file)")
    try:
        raw = structures.parse_json(_open_text(path)[0])
    except ValueError as exc:
        raise DataError(f"split file {path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"split file {path} must hold a JSON object, not {type(raw).__name__}")
    if all(k in raw for k in ALIGNN_SPLIT_KEYS.values()):
        return {k: [str(i) for i in raw[alignn]] for k, alignn in ALIGNN_SPLIT_KEYS.items()}
    missing = [k for k in ("train", "val", "test") if k not in raw]
    if missing:
        raise DataError(
            f"split file {path} lacks {missing}; expected keys train, val, test (the JARVIS "
            "leaderboard form) or id_train, id_val, id_test (ALIGNN's ids_train_val_test.json)"
        )
    return {k: [str(i) for i in raw[k]] for k in ("train", "val", "test")}


def alignn_split(splits: dict[str, list[str]]) -> dict[str, list[str]]:
    """A run's split in upstream ALIGNN's ``ids_train_val_test.json`` form."""
    return {alignn: list(splits[k]) for k, alignn in ALIGNN_SPLIT_KEYS.items()}


def read_split_labels(path: Path) -> dict[str, dict[str, float]] | None:
    """The labels of a split file, ``{split: {id: value}}``; None when it carries none.

    A JARVIS-leaderboard file ``{"train": {id: value}, ...}`` with numeric values has labels;
    one whose splits are id lists (ALIGNN's ``ids_train_val_test.json`` form) or whose values
    are not numbers (e.g. the leaderboard's AtomGen structures) has none.
    """
    raw = json.loads(_open_text(path)[0])
    labels: dict[str, dict[str, float]] = {}
    for name in ("train", "val", "test"):
        part = raw.get(name)
        if not isinstance(part, dict):
            return None
        values = list(part.values())
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            return None
        labels[name] = {str(k): float(v) for k, v in part.items()}
    return labels


def resolve_duplicates(crystals: list[Crystal], report: LoadReport, policy: str) -> list[Crystal]:
    """Apply ``dataset.duplicates`` to records whose id occurs more than once.

    ``error`` refuses them, naming the ids and their targets; ``first`` keeps the first record
    of each id; ``drop`` drops every record of such an id. The outcome is recorded in
    ``report.duplicates``. A repeated id would put one crystal into two splits, or let one
    label silently overwrite the other.
    """
    counts = Counter(c.id for c in crystals)
    repeated = [cid for cid, n in counts.items() if n > 1]
    report.duplicates = {"policy": policy, "duplicated_ids": len(repeated), "dropped": 0}
    if not repeated:
        return crystals
    if policy == "error":
        targets: dict[str, list[float]] = {}
        for c in crystals:
            if counts[c.id] > 1:
                targets.setdefault(c.id, []).append(c.target)
        shown = "; ".join(
            f"{cid} (targets {', '.join(f'{t:g}' for t in targets[cid])})" for cid in repeated[:10]
        )
        more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        raise DataError(
            f"{len(repeated)} ids occur more than once in {report.source}: {shown}{more}. Set "
            "dataset.duplicates=first (keep the first record of each id) or dataset.duplicates=drop "
            "(drop every record of those ids), or fix the data"
        )
    if policy == "first":
        seen: set[str] = set()
        kept = []
        for c in crystals:
            if c.id not in seen:
                seen.add(c.id)
                kept.append(c)
    elif policy == "drop":
        kept = [c for c in crystals if counts[c.id] == 1]
    else:
        raise ValueError(f"dataset.duplicates={policy!r} is not one of {DUPLICATE_POLICIES}")
    report.duplicates["dropped"] = len(crystals) - len(kept)
    return kept


def jarvis_store_dir(configured: str | None) -> Path:
    """Where figshare zips live: ``dataset.jarvis_dir``, ``$FUSION_TUNER_JARVIS_DIR``, or the cache."""
    if configured:
        from fusion_tuner.paths import resolve

        return resolve(configured)
    env = os.environ.get("FUSION_TUNER_JARVIS_DIR")
    return Path(env).expanduser() if env else default_cache_root() / "jarvis"
