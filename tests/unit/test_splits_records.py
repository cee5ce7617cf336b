"""Splits, split files, loaders' error messages and drop accounting."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from fusion_tuner.data import records, splits
from fusion_tuner.data.demo import generate_demo
from fusion_tuner.errors import DataError
from tests.helpers import (
    jarvis_records,
    nacl_cif,
    write_cif_folder,
    write_folder,
    write_jarvis_store,
)


def test_random_split_is_seeded_disjoint_and_sized() -> None:
    ids = [f"c{i}" for i in range(101)]
    a = splits.random_split(ids, (0.8, 0.1, 0.1), seed=7)
    assert a == splits.random_split(ids, (0.8, 0.1, 0.1), seed=7)
    assert a != splits.random_split(ids, (0.8, 0.1, 0.1), seed=8)
    assert [len(a[k]) for k in ("train", "val", "test")] == [81, 10, 10]
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(ids)


def test_fixed_split_matches_canonical_ids_and_counts_missing() -> None:
    ids = ["POSCAR-JVASP-1.vasp", "POSCAR-JVASP-2.vasp", "JVASP-3", "JVASP-9"]
    wanted = {"train": ["JVASP-1", "JVASP-3", "JVASP-77"], "val": ["JVASP-2"], "test": ["JVASP-5"]}
    got, report = splits.fixed_split(ids, wanted)
    assert got == {
        "train": ["POSCAR-JVASP-1.vasp", "JVASP-3"],
        "val": ["POSCAR-JVASP-2.vasp"],
        "test": [],
    }
    assert report["missing_from_data"] == {"train": 1, "val": 0, "test": 1}
    assert report["not_in_split_file"] == 1


def test_split_file_zipped_or_not(tmp_path: Path) -> None:
    content = {"train": {"a": 1.0}, "val": {"b": 2.0}, "test": {"c": 3.0}}
    plain = tmp_path / "s.json"
    plain.write_text(json.dumps(content))
    zipped = tmp_path / "s.json.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("s.json", json.dumps(content))
    assert records.read_split_file(plain) == records.read_split_file(zipped)
    assert records.read_split_file(zipped)["val"] == ["b"]
    (tmp_path / "bad.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(DataError, match="lacks"):
        records.read_split_file(tmp_path / "bad.json")


def test_alignn_split_file_is_read_and_written_beside_split_json(tmp_path: Path) -> None:
    from fusion_tuner.rundir import RunDir

    alignn = {"id_train": ["POSCAR-a.vasp", "b"], "id_val": ["c"], "id_test": ["d", "e"]}
    (tmp_path / "ids_train_val_test.json").write_text(json.dumps(alignn))
    got = records.read_split_file(tmp_path / "ids_train_val_test.json")
    assert got == {"train": ["POSCAR-a.vasp", "b"], "val": ["c"], "test": ["d", "e"]}
    files = RunDir(tmp_path / "run")
    files.path.mkdir()
    files.write_split(got)
    assert json.loads(files.split.read_text()) == got
    assert json.loads(files.alignn_split.read_text()) == alignn
    assert records.read_split_file(files.alignn_split) == records.read_split_file(files.split)
    (tmp_path / "half.json").write_text(json.dumps({"id_train": [], "id_val": []}))
    with pytest.raises(DataError, match="id_train, id_val, id_test"):
        records.read_split_file(tmp_path / "half.json")


def test_jarvis_store_drops_na_and_rejects_unknown_target(tmp_path: Path) -> None:
    store = write_jarvis_store(tmp_path / "store", jarvis_records(40))
    crystals, report = records.load_jarvis("dft_3d", "optb88vdw_bandgap", store, None)
    assert report.n_raw == 40 and report.missing_target == 6  # every 7th is "na"
    assert len(crystals) == 34 and crystals[0].id == "JVASP-1001"
    limited, rep = records.load_jarvis("dft_3d", "optb88vdw_bandgap", store, 10)
    assert len(limited) == 10 and rep.limited == 24
    with pytest.raises(DataError) as err:
        records.load_jarvis("dft_3d", "optb88_gap", store, None)
    assert "formation_energy_peratom" in str(err.value) and "optb88vdw_bandgap" in str(err.value)


def test_folder_reports_unreadable_files_and_reads_descriptions(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=12, broken=2)
    crystals, report = records.load_folder(root, None)
    assert len(crystals) == 12
    assert [i for i, _ in report.unreadable] == ["broken-0.vasp", "broken-1.vasp"]
    assert all("unreadable" in why for _, why in report.unreadable)
    assert crystals[0].text.startswith(crystals[0].text.split(" ")[0])
    assert crystals[0].text and "crystallizes" in crystals[0].text


def test_missing_id_prop_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"id_prop\.csv not found"):
        records.load_folder(tmp_path, None)


def test_canonical_id() -> None:
    assert records.canonical_id("POSCAR-JVASP-10.vasp") == "JVASP-10"
    assert records.canonical_id("dir/JVASP-7.cif") == "JVASP-7"
    assert records.canonical_id("JVASP-3") == "JVASP-3"


# --------------------------------------------------------------- CIF folders, safety, duplicates
def test_a_cif_named_like_a_shell_command_is_read_as_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jarvis' default CIF reader ran os.system("cif2cell " + filename): this name ran touch."""
    import tempfile

    name = "a;touch INJECTED;#.cif"
    root = write_cif_folder(tmp_path / "data", n=3, names=[name])
    assert (root / name).is_file()
    monkeypatch.chdir(tmp_path)
    crystals, report = records.load_folder(root, None)
    assert [c.id for c in crystals] == [name, "demo-1.cif", "demo-2.cif"]
    assert report.structure_kinds == {"cif": 3} and not report.unreadable
    for where in (tmp_path, root, Path(tempfile.gettempdir()), Path.cwd()):
        assert not (where / "INJECTED").exists(), where


def test_reading_cifs_leaves_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    root = write_cif_folder(tmp_path / "data", n=6)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    crystals, _ = records.load_folder(root, None)
    assert len(crystals) == 6
    assert list(scratch.iterdir()) == []


def test_partial_occupancy_cif_in_a_folder_is_dropped_with_the_reason(tmp_path: Path) -> None:
    root = write_cif_folder(tmp_path / "data", n=2)
    (root / "nacl.cif").write_text(nacl_cif())
    (root / "disordered.cif").write_text(nacl_cif(na_occupancy=0.6))
    with (root / "id_prop.csv").open("a") as fh:
        fh.write("nacl.cif,1.0\ndisordered.cif,2.0\n")
    crystals, report = records.load_folder(root, None)
    assert [c.id for c in crystals] == ["demo-0.cif", "demo-1.cif", "nacl.cif"]
    assert crystals[-1].id == "nacl.cif" and len(crystals[-1].elements) == 8
    assert report.unreadable == [
        (
            "disordered.cif",
            "unreadable disordered.cif: partial occupancy: site Na1 (Na) has "
            "occupancy 0.6; disordered structures are not supported",
        ),
    ]


def test_non_utf8_text_files_name_the_file_and_line(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", n=3, with_text=False)
    lines = (root / "id_prop.csv").read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"POSCAR", b"POSC\xc4R", 1)
    (root / "id_prop.csv").write_bytes(b"".join(lines))
    with pytest.raises(DataError) as err:
        records.load_folder(root, None)
    assert str(root / "id_prop.csv") in str(err.value)
    assert "line 2, column 5: byte 0xc4 is not UTF-8" in str(err.value)
    desc = tmp_path / "d.csv"
    desc.write_bytes(b"id,description\nx,fine\ny,caf\xe9\n")
    with pytest.raises(DataError, match=r"d\.csv: line 3, column 6"):
        records.read_descriptions(desc)


def _crystals(pairs: list[tuple[str, float]]) -> list[records.Crystal]:
    c = generate_demo(1, 0)[0]
    return [records.Crystal(i, c.lattice, c.cart, c.elements, t) for i, t in pairs]


def test_duplicate_ids_error_first_or_drop_with_counts() -> None:
    pairs = [("a", 1.0), ("b", 2.0), ("a", 1.5), ("c", 3.0), ("b", 2.0), ("a", 9.0)]
    with pytest.raises(DataError) as err:
        records.resolve_duplicates(_crystals(pairs), records.LoadReport("x"), "error")
    assert "2 ids occur more than once in x: a (targets 1, 1.5, 9); b (targets 2, 2)" in str(
        err.value
    )
    assert "dataset.duplicates=first" in str(err.value)
    report = records.LoadReport("x")
    first = records.resolve_duplicates(_crystals(pairs), report, "first")
    assert [(c.id, c.target) for c in first] == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert report.duplicates == {"policy": "first", "duplicated_ids": 2, "dropped": 3}
    report = records.LoadReport("x")
    dropped = records.resolve_duplicates(_crystals(pairs), report, "drop")
    assert [c.id for c in dropped] == ["c"]
    assert report.as_dict()["duplicates"] == {"policy": "drop", "duplicated_ids": 2, "dropped": 5}
    unique = _crystals([("a", 1.0), ("b", 2.0)])
    assert records.resolve_duplicates(unique, records.LoadReport("x"), "error") == unique
