"""The JARVIS leaderboard's dft_3d labels against other copies of the same crystals' labels.

Usage: python bench/label_check.py [--data fusion_tuner/data/samples] [--out bench/results/label_check]

Sources compared with the leaderboard's benchmark files (``jarvis_leaderboard_dft3d/
SinglePropertyPrediction_dft_3d_<property>.json.zip``, all splits together):

* ``store_full``: the 1,104 records of ``jarvis_dft3d_mini/store_full`` (dft_3d layout), for
  ``optb88vdw_bandgap``, ``formation_energy_peratom``, ``mbj_bandgap`` and ``Tc_supercon``.
  ``../shared/data/README.md`` (section 3) says their property values were joined by jid *from
  these leaderboard files*, so this comparison checks that join; it cannot test the leaderboard.
* ``alignn_sample50``: upstream ALIGNN's ``examples/sample_data/id_prop.csv`` (50 band gaps that
  upstream's generator script took from figshare's ``dft_3d``, not from the leaderboard files),
  the one copy here that was not built from the leaderboard; 50 crystals, one property.

A label matches when ``|a - b| <= 1e-4 * max(1, |b|)`` (the default
``dataset.split_label_tolerance``). Per source and property: crystals with a value on both
sides, matches, mismatches (with up to 5 examples and the largest difference), values on one
side only. Written to ``<out>.json`` and ``<out>.md`` (temp file, then rename).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROPERTIES = ("optb88vdw_bandgap", "formation_energy_peratom", "mbj_bandgap", "Tc_supercon")
TOLERANCE = 1e-4


def _zip_json(path: Path) -> Any:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(z.namelist()[0]))


def leaderboard(shared: Path, prop: str) -> dict[str, float]:
    """jid -> label over train, val and test of the leaderboard's benchmark file."""
    raw = _zip_json(
        shared / "jarvis_leaderboard_dft3d" / f"SinglePropertyPrediction_dft_3d_{prop}.json.zip"
    )
    out: dict[str, float] = {}
    for split in ("train", "val", "test"):
        out.update({k: float(v) for k, v in raw[split].items()})
    return out


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None  # "na"
    return x if math.isfinite(x) else None


def store_full(shared: Path) -> dict[str, dict[str, float]]:
    """property -> jid -> value of the store's records (``"na"`` left out)."""
    (zipped,) = sorted((shared / "jarvis_dft3d_mini" / "store_full").glob("*.zip"))
    records = _zip_json(zipped)  # the figshare file (../shared) or records.json.zip (samples)
    out: dict[str, dict[str, float]] = {p: {} for p in PROPERTIES}
    for r in records:
        for p in PROPERTIES:
            x = _number(r.get(p))
            if x is not None:
                out[p][r["jid"]] = x
    return out


def alignn_sample50(shared: Path) -> dict[str, float]:
    """jid -> band gap of upstream's ``id_prop.csv`` (``POSCAR-JVASP-<n>.vasp,<gap>``)."""
    rows = (shared / "jarvis_dft3d_alignn_sample50" / "id_prop.csv").read_text().splitlines()
    out = {}
    for name, value in csv.reader(rows):
        out[name.removeprefix("POSCAR-").removesuffix(".vasp")] = float(value)
    return out


def compare(ours: dict[str, float], board: dict[str, float]) -> dict[str, Any]:
    both = sorted(set(ours) & set(board))
    differ = [
        (jid, ours[jid], board[jid])
        for jid in both
        if abs(ours[jid] - board[jid]) > TOLERANCE * max(1.0, abs(board[jid]))
    ]
    return {
        "source_values": len(ours),
        "leaderboard_values": len(board),
        "both": len(both),
        "match": len(both) - len(differ),
        "differ": len(differ),
        "source_only": len(set(ours) - set(board)),
        "max_abs_difference": max((abs(a - b) for _, a, b in differ), default=0.0),
        "examples": [list(d) for d in differ[:5]],
    }


def check(shared: Path) -> dict[str, Any]:
    boards = {p: leaderboard(shared, p) for p in PROPERTIES}
    store = store_full(shared)
    rows = [
        {"source": "store_full", "property": p, **compare(store[p], boards[p])} for p in PROPERTIES
    ]
    rows.append(
        {
            "source": "alignn_sample50",
            "property": "optb88vdw_bandgap",
            **compare(alignn_sample50(shared), boards["optb88vdw_bandgap"]),
        }
    )
    return {"tolerance": TOLERANCE, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Leaderboard labels against other copies (`python bench/label_check.py`)",
        "",
        f"Match: |a − b| ≤ {result['tolerance']:g} × max(1, |b|).",
        "",
        "| source | property | with a value | on both sides | match | differ | largest difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['source']} | {r['property']} | {r['source_values']} | {r['both']} | "
            f"{r['match']} | {r['differ']} | {r['max_abs_difference']:g} |"
        )
    lines += [
        "",
        "`store_full`'s values were joined by jid from the leaderboard files themselves "
        "(`../shared/data/README.md`, section 3): these rows check that join, not the "
        "leaderboard. `alignn_sample50` (upstream ALIGNN's sample `id_prop.csv`, taken from "
        "figshare's `dft_3d` by upstream's script) is the only copy here not built from the "
        "leaderboard: 50 band gaps, 22 of them above 0.",
        "",
    ]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(  # the bundled samples hold the same files
        "--shared",
        "--data",
        dest="shared",
        type=Path,
        default=ROOT / "fusion_tuner" / "data" / "samples",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "label_check")
    args = parser.parse_args(argv)
    if not (args.shared / "jarvis_leaderboard_dft3d").is_dir():
        raise SystemExit(f"--shared {args.shared}: no jarvis_leaderboard_dft3d/ there")
    result = check(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    _write(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
