"""Prediction inputs: structure files, folders, ALIGNN folders and tables -> crystals, with
every unreadable input listed and its reason."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner.data.demo import generate_demo
from fusion_tuner.inference.inputs import read_inputs
from tests.helpers import write_folder


def _cif(atoms, path: Path) -> str:
    """A valid CIF of ``atoms`` (jarvis writes a first line that is not a CIF comment)."""
    atoms.write_cif(filename=str(path), with_spg_info=False)
    text = "# " + path.read_text()
    path.write_text(text)
    return text


def _atoms(i: int):
    from jarvis.core.atoms import Atoms

    c = generate_demo(10, 3)[i]
    return c, Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)


def test_files_folders_and_alignn_folders(tmp_path: Path) -> None:
    from jarvis.io.vasp.inputs import Poscar

    alignn = write_folder(tmp_path / "alignn", n=4, broken=1)
    loose = tmp_path / "loose"
    loose.mkdir()
    c0, a0 = _atoms(5)
    Poscar(a0).write_file(str(loose / "POSCAR"))
    (loose / "README.md").write_text("not a structure; ignored in a folder\n")
    _, a1 = _atoms(6)
    _cif(a1, tmp_path / "one.cif")
    got = read_inputs([alignn, loose, tmp_path / "one.cif"])
    assert [c.id for c in got.crystals] == [
        *(f"POSCAR-demo-{i}.vasp" for i in range(4)),
        "POSCAR",
        "one.cif",
    ]
    assert all(math.isfinite(c.target) for c in got.crystals[:4])
    assert got.crystals[0].text  # the ALIGNN folder's descriptions.csv comes along
    assert math.isnan(got.crystals[4].target) and got.crystals[4].text is None
    assert not got.labelled  # the loose files carry no target
    assert got.crystals[4].elements == c0.elements
    np.testing.assert_allclose(got.crystals[4].cart, c0.cart, atol=1e-6)
    assert [w for w, _ in got.skipped] == [str(alignn / "broken-0.vasp")]
    assert read_inputs([alignn]).labelled


def test_tables_duplicates_and_unusable_paths(tmp_path: Path) -> None:
    c0, a0 = _atoms(1)
    _, a1 = _atoms(2)
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["material_id", "cif", "heat_ref"])
        w.writerow(["m-1", _cif(a0, tmp_path / "a0.cif"), "1.5"])
        w.writerow(["m-2", "garbage", "2.0"])
        w.writerow(["m-3", _cif(a1, tmp_path / "a1.cif"), "na"])
    jsonl = tmp_path / "atoms.jsonl"
    jsonl.write_text(json.dumps({"id": "m-1", "atoms": a0.to_dict()}) + "\n")
    (tmp_path / "notes.txt").write_text("x")
    got = read_inputs(
        [table, jsonl, tmp_path / "notes.txt", tmp_path / "missing.vasp"], target="heat_ref"
    )
    assert [c.id for c in got.crystals] == ["m-1", "m-3"]
    assert got.crystals[0].target == 1.5 and math.isnan(got.crystals[1].target)
    # a CIF keeps the cell, not its orientation: compare what is frame-independent
    first = got.crystals[0]
    assert sorted(first.elements) == sorted(c0.elements)
    lengths = [sorted(np.linalg.norm(c.lattice, axis=1)) for c in (first, c0)]
    np.testing.assert_allclose(lengths[0], lengths[1], rtol=1e-5)
    volumes = [abs(np.linalg.det(c.lattice)) for c in (first, c0)]
    assert volumes[0] == pytest.approx(volumes[1], rel=1e-5)
    reasons = dict(got.skipped)
    assert reasons["table.csv:m-2"].startswith("unreadable cif")
    assert reasons[str(jsonl)] == "duplicate id 'm-1' (already read)"
    assert reasons[str(tmp_path / "notes.txt")].startswith("not a structure file")
    assert reasons[str(tmp_path / "missing.vasp")] == "not found"
