"""Structures in every form (CIF with symmetry, POSCAR, JARVIS and pymatgen dicts) and tables."""

from __future__ import annotations

import gzip
import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner.data import structures
from fusion_tuner.data.demo import generate_demo
from fusion_tuner.data.structures import StructureError, parse_structure, read_cif
from fusion_tuner.data.tables import load_table, read_table
from fusion_tuner.errors import DataError
from tests.helpers import RUTILE_CIF, WURTZITE_CIF, nacl_cif, p1_cif


def _frac(lattice: np.ndarray, cart: np.ndarray) -> np.ndarray:
    return np.round(cart @ np.linalg.inv(lattice), 6) % 1.0


def _sites(lattice, cart, elements, element: str) -> set[tuple[float, ...]]:
    frac = _frac(lattice, cart)
    return {tuple(float(v) for v in f) for f, e in zip(frac, elements, strict=True) if e == element}


def assert_same_crystal(lattice, cart, ref_lattice, ref_cart) -> None:
    """Equal up to the frame (a CIF puts a along x) and whole lattice translations of atoms."""
    np.testing.assert_allclose(lattice @ lattice.T, ref_lattice @ ref_lattice.T, atol=1e-6)
    shift = cart @ np.linalg.inv(lattice) - ref_cart @ np.linalg.inv(ref_lattice)
    np.testing.assert_allclose(shift - np.round(shift), 0.0, atol=1e-6)


FCC = {(0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)}


@pytest.mark.parametrize("with_ops", [True, False], ids=["192 operations", "symbol only"])
def test_symmetric_nacl_expands_to_the_8_atoms_of_its_conventional_cell(with_ops: bool) -> None:
    lattice, cart, elements = read_cif(nacl_cif(with_ops=with_ops))
    assert Counter(elements) == {"Na": 4, "Cl": 4}
    np.testing.assert_allclose(lattice, 5.64 * np.eye(3), atol=1e-9)
    assert _sites(lattice, cart, elements, "Na") == FCC
    assert _sites(lattice, cart, elements, "Cl") == {
        tuple(float((v + 0.5) % 1.0) for v in s) for s in FCC
    }


def test_rutile_reads_elements_from_type_symbols_not_labels() -> None:
    lattice, cart, elements = read_cif(RUTILE_CIF)
    assert Counter(elements) == {"Ti": 2, "O": 4}  # labels are "Tia" and "Ob"
    assert _sites(lattice, cart, elements, "Ti") == {(0.0, 0.0, 0.0), (0.5, 0.5, 0.5)}
    assert _sites(lattice, cart, elements, "O") == {
        (0.3053, 0.3053, 0.0),
        (0.6947, 0.6947, 0.0),
        (0.1947, 0.8053, 0.5),
        (0.8053, 0.1947, 0.5),
    }
    assert np.linalg.det(lattice) == pytest.approx(4.594**2 * 2.959)


def test_wurtzite_hexagonal_cell() -> None:
    lattice, cart, elements = read_cif(WURTZITE_CIF)
    assert Counter(elements) == {"Zn": 2, "O": 2}
    assert np.linalg.det(lattice) == pytest.approx(3.25**2 * 5.207 * np.sqrt(3) / 2)
    zn = np.array(sorted(_sites(lattice, cart, elements, "Zn")))
    np.testing.assert_allclose(zn, [[1 / 3, 2 / 3, 0.0], [2 / 3, 1 / 3, 0.5]], atol=1e-4)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nacl_cif(na_occupancy=0.5), r"partial occupancy: site Na1 \(Na\) has occupancy 0.5"),
        (RUTILE_CIF.replace("_cell_length_c 2.959(2)\n", ""), "CIF lacks _cell_length_c"),
        (RUTILE_CIF.replace(" Tia Ti4+ ", " Tia Qq "), "unknown element"),
        (RUTILE_CIF.replace(" Tia Ti4+ 0.0 ", " Tia Ti4+ ? "), "non-numeric fractional"),
        (RUTILE_CIF + RUTILE_CIF.replace("data_TiO2_rutile", "data_two"), "2 data blocks"),
        ("this is not a CIF", "CIF syntax"),
    ],
    ids=["partial occupancy", "no cell c", "unknown element", "? coordinate", "two", "garbage"],
)
def test_unusable_cifs_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(StructureError, match=reason):
        read_cif(text)


def _pymatgen_dict(occupancy: float = 1.0, two_species: bool = False) -> dict:
    species = [{"element": "Na", "occu": occupancy}]
    if two_species:
        species.append({"element": "K", "occu": 1.0 - occupancy})
    lattice = np.diag([5.0, 5.0, 5.0]).tolist()
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "lattice": {"matrix": lattice, "pbc": [True, True, True]},
        "sites": [
            {"species": species, "abc": [0.0, 0.0, 0.0], "xyz": [0.0, 0.0, 0.0], "label": "Na"},
            {
                "species": [{"element": "Cl", "oxidation_state": -1, "occu": 1}],
                "abc": [0.5, 0.5, 0.5],
                "label": "Cl",
            },
        ],
    }


def test_each_kind_is_detected_and_read_alike() -> None:
    c = generate_demo(3, 1)[0]
    jarvis = {
        "lattice_mat": c.lattice.tolist(),
        "coords": c.cart.tolist(),
        "elements": c.elements,
        "cartesian": True,
    }
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    poscar = Poscar(
        Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
    ).to_string()
    forms = {
        "cif": p1_cif(c.lattice, c.cart, c.elements),
        "poscar": poscar,
        "jarvis_atoms": jarvis,
        "pymatgen_structure": _pymatgen_dict(),
    }
    for kind, value in forms.items():
        got_kind, (lattice, cart, elements) = parse_structure(value)
        assert got_kind == kind
        if kind != "pymatgen_structure":
            assert elements == c.elements
            assert_same_crystal(lattice, cart, c.lattice, c.cart)
    assert parse_structure(json.dumps(_pymatgen_dict()))[0] == "pymatgen_structure"
    assert parse_structure(repr(jarvis))[0] == "jarvis_atoms"  # a Python dict repr in a CSV
    _, (_, cart, elements) = parse_structure(_pymatgen_dict())
    assert elements == ["Na", "Cl"]
    np.testing.assert_allclose(cart, [[0, 0, 0], [2.5, 2.5, 2.5]])


@pytest.mark.parametrize("two_species", [False, True], ids=["occupancy 0.5", "Na0.5 K0.5"])
def test_pymatgen_partial_occupancy_is_refused(two_species: bool) -> None:
    with pytest.raises(StructureError, match="partial occupancy: site 0"):
        parse_structure(_pymatgen_dict(0.5, two_species))


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "empty"), (None, "empty"), (float("nan"), "empty"), ({"a": 1}, "neither"), (3, "int")],
)
def test_values_that_are_no_structure(value, reason: str) -> None:
    with pytest.raises(StructureError, match=reason):
        structures.detect_kind(value)


# -------------------------------------------------------------------------------------- tables
def _demo_rows(n: int = 6) -> list[dict]:
    return [
        {
            "material_id": f"m-{i}",
            "cif": p1_cif(c.lattice, c.cart, c.elements),
            "formula": "".join(c.elements),
            "heat_ref": round(c.target, 4),
        }
        for i, c in enumerate(generate_demo(n, 2))
    ]


def _write_cdvae_csv(path: Path, rows: list[dict]) -> Path:
    """CDVAE's layout: an unnamed index column first, CIF text quoted over many lines."""
    import csv

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", *rows[0]])
        for i, row in enumerate(rows):
            writer.writerow([i, *row.values()])
    return path


def test_cdvae_style_csv_with_cif_column(tmp_path: Path) -> None:
    rows = _demo_rows(6)
    rows[1]["heat_ref"] = "na"
    rows[2]["heat_ref"] = ""
    rows[3]["cif"] = "data_broken\n_cell_length_a 1\n"
    path = _write_cdvae_csv(tmp_path / "perov.csv", rows)
    crystals, report = load_table(path, "heat_ref", "cif", "material_id", None)
    assert [c.id for c in crystals] == ["m-0", "m-4", "m-5"]
    assert crystals[0].target == rows[0]["heat_ref"]
    assert report.n_raw == 6 and report.missing_target == 2
    assert report.unreadable == [("m-3", "cif: no atom sites (_atom_site_fract_x) in the CIF")]
    assert report.as_dict()["structure_kinds"] == {"cif": 3}
    by_row, _ = load_table(path, "heat_ref", None, None, 2)  # "cif" found by convention
    assert [c.id for c in by_row] == ["0", "4"]  # the row number, from 0


def test_matbench_split_json_with_pymatgen_dicts(tmp_path: Path) -> None:
    table = {
        "index": ["mb-1", "mb-2", "mb-3"],
        "columns": ["structure", "e_form"],
        "data": [[_pymatgen_dict(), -1.5], [_pymatgen_dict(), -0.5], [_pymatgen_dict(), None]],
    }
    path = tmp_path / "matbench_mp_e_form.json.gz"
    path.write_bytes(gzip.compress(json.dumps(table).encode()))
    crystals, report = load_table(path, "e_form", None, "index", None)
    assert [(c.id, c.target) for c in crystals] == [("mb-1", -1.5), ("mb-2", -0.5)]
    assert report.missing_target == 1
    assert report.structure_kinds == {"pymatgen_structure": 2}


def test_jarvis_dump_and_pandas_columns_json(tmp_path: Path) -> None:
    recs = [
        {
            "jid": f"JVASP-{i}",
            "atoms": {
                "lattice_mat": c.lattice.tolist(),
                "coords": c.cart.tolist(),
                "elements": c.elements,
                "cartesian": True,
            },
            "gap": c.target,
        }
        for i, c in enumerate(generate_demo(4, 4))
    ]
    (tmp_path / "dump.json").write_text(json.dumps(recs))
    crystals, report = load_table(tmp_path / "dump.json", "gap", None, "jid", None)
    assert [c.id for c in crystals] == ["JVASP-0", "JVASP-1", "JVASP-2", "JVASP-3"]
    assert report.structure_kinds == {"jarvis_atoms": 4}
    columns = {
        "atoms": {str(i): r["atoms"] for i, r in enumerate(recs)},
        "gap": {str(i): r["gap"] for i, r in enumerate(recs)},
    }
    (tmp_path / "cols.json").write_text(json.dumps(columns))
    again, _ = load_table(tmp_path / "cols.json", "gap", None, "index", None)
    assert [c.id for c in again] == ["0", "1", "2", "3"]
    assert [c.target for c in again] == [c.target for c in crystals]


def test_json_lines_gz_and_zipped_csv(tmp_path: Path) -> None:
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    lines = []
    for i, c in enumerate(generate_demo(3, 6)):
        atoms = Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
        lines.append(json.dumps({"id": f"p{i}", "poscar": Poscar(atoms).to_string(), "y": i}))
    jsonl = tmp_path / "t.jsonl.gz"
    jsonl.write_bytes(gzip.compress(("\n".join(lines) + "\n\n").encode()))
    crystals, report = load_table(jsonl, "y", None, "id", None)
    assert [c.id for c in crystals] == ["p0", "p1", "p2"] and report.structure_kinds == {
        "poscar": 3
    }
    csv_path = _write_cdvae_csv(tmp_path / "inner.csv", _demo_rows(4))
    zipped = tmp_path / "t.csv.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(csv_path, "inner.csv")
    assert len(load_table(zipped, "heat_ref", "cif", "material_id", None)[0]) == 4


def test_unknown_columns_fail_at_once_naming_the_columns(tmp_path: Path) -> None:
    path = _write_cdvae_csv(tmp_path / "perov.csv", _demo_rows(3))
    for kwargs, key in (
        ({"structure_column": "structure_cif"}, "dataset.structure_column='structure_cif'"),
        ({"target": "heat"}, "dataset.target='heat'"),
        ({"id_column": "mp_id"}, "dataset.id_column='mp_id'"),
    ):
        args = {"target": "heat_ref", "structure_column": "cif", "id_column": None} | kwargs
        with pytest.raises(DataError) as err:
            load_table(path, args["target"], args["structure_column"], args["id_column"], None)
        assert key in str(err.value)
        assert "'' (unnamed index), 'material_id', 'cif', 'formula', 'heat_ref'" in str(err.value)
    with pytest.raises(DataError, match=r"dataset\.target='formula' holds no numbers.*heat_ref"):
        load_table(path, "formula", "cif", None, None)
    (tmp_path / "nostruct.json").write_text(json.dumps([{"x": 1, "y": 2}]))
    with pytest.raises(DataError, match=r"none of the conventional structure columns.*'x', 'y'"):
        load_table(tmp_path / "nostruct.json", "y", None, None, None)


def test_table_format_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,y\na,1\nb\xe9,2\n")
    with pytest.raises(DataError, match=r"latin1\.csv: line 3, column 2: byte 0xe9 is not UTF-8"):
        read_table(path)
    (tmp_path / "t.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"t\.jsonl: line 2 is not JSON"):
        read_table(tmp_path / "t.jsonl")
    (tmp_path / "t.parquet").write_text("")
    with pytest.raises(DataError, match="cannot tell the table format"):
        read_table(tmp_path / "t.parquet")


# ------------------------------------------------ issue 26, item 17: CIFs that lie about cells
def test_an_unknown_space_group_symbol_without_operations_is_refused_not_read_as_p1() -> None:
    text = nacl_cif(with_ops=False).replace("'F m -3 m'", "'Q x -9 z'")
    with pytest.raises(StructureError, match="unknown space-group symbol 'Q x -9 z'"):
        read_cif(text)
    # listed operations decide, whatever the symbol says
    assert len(read_cif(nacl_cif(with_ops=True).replace("'F m -3 m'", "'Q x -9 z'"))[2]) == 8


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("_cell_angle_alpha 90", "_cell_angle_alpha 200"), "strictly between 0 and 180"),
        (("_cell_angle_gamma 90", "_cell_angle_gamma 0"), "strictly between 0 and 180"),
        (("_cell_length_b 5.64", "_cell_length_b -5.64"), "each must be positive"),
        (("_cell_length_c 5.64", "_cell_length_c 0"), "each must be positive"),
        (
            (
                "_cell_angle_alpha 90\n_cell_angle_beta 90",
                "_cell_angle_alpha 170\n_cell_angle_beta 10",
            ),
            "close no cell",
        ),
    ],
)
def test_impossible_cell_parameters_are_refused(change: tuple[str, str], reason: str) -> None:
    text = nacl_cif(with_ops=False)
    assert change[0] in text
    with pytest.raises(StructureError, match=reason):
        read_cif(text.replace(*change))
