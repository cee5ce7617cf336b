"""Inputs that must not take a load down or reach outside the data (issue 26, items 7-9):
decompression bombs in tables, id_prop.csv rows outside their folder, and single bad rows."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest

from fusion_tuner.data.tables import load_table, read_table
from fusion_tuner.errors import DataError
from tests.conftest import compose
from tests.helpers.data import NACL_POSCAR

MiB = 1 << 20


def _bomb_payload(fh, size: int) -> None:
    fh.write(b'structure,target\n"')
    chunk = b"a" * MiB
    for _ in range(size // MiB):
        fh.write(chunk)
    fh.write(b'",1.0\n')


def gzip_bomb(path: Path, size: int) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as fh:
        _bomb_payload(fh, size)
    return path


def zip_bomb(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("t.csv", "w") as fh:
        _bomb_payload(fh, size)
    return path


# ------------------------------------------------------------------ 7: decompression bombs
@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_a_table_bomb_is_refused_naming_the_file_and_the_key(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"t.csv.{kind}"
    (gzip_bomb if kind == "gz" else zip_bomb)(path, 8 * MiB)
    assert path.stat().st_size < 200_000
    with pytest.raises(DataError) as err:
        read_table(path, limit=2 * MiB)
    msg = str(err.value)
    assert str(path) in msg and "dataset.max_table_bytes=2097152" in msg
    assert "more than 2097152 bytes" in msg
    # under the cap the same file is read
    rows, columns = read_table(path, limit=16 * MiB)
    assert columns == ["structure", "target"] and len(rows[0]["structure"]) == 8 * MiB


@pytest.mark.timeout(60)
def test_the_cap_is_the_config_key_and_defaults_far_above_real_tables(tmp_path: Path) -> None:
    from fusion_tuner.config import config_hash
    from fusion_tuner.data.module import CrystalDataModule

    path = gzip_bomb(tmp_path / "t.csv.gz", 4 * MiB)
    cfg = compose(
        "dataset=table", f"dataset.path={path}", "dataset.max_table_bytes=1048576", cache=tmp_path
    )
    assert compose().dataset.max_table_bytes == 2 << 30
    # a guard, not a setting of the result: old runs keep their config hash
    assert config_hash(cfg) == config_hash(
        compose("dataset=table", f"dataset.path={path}", cache=tmp_path)
    )
    with pytest.raises(DataError, match=r"dataset\.max_table_bytes=1048576"):
        CrystalDataModule(cfg)._load_records()


def test_a_plain_table_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("structure,target\nx,1.0\n")
    assert read_table(path)[0] == [{"structure": "x", "target": "1.0"}]
    crystals, report = load_table(path, "target", None, None, None)
    assert not crystals and report.unreadable[0][0] == "0"


# ------------------------------------------------------- 8: id_prop.csv stays in its folder
SECRET = "root:x:0:0:root:/root:/bin/bash\nadmin:$6$s3cr3t-hash:19000:0:99999:7:::\n"


def hostile_folder(tmp_path: Path) -> Path:
    """An ALIGNN folder whose id_prop.csv names /etc/passwd, a climb to /etc/shadow, and a
    secret beside the folder, besides one good crystal."""
    (tmp_path / "secret.vasp").write_text(SECRET)
    root = tmp_path / "data"
    (root / "structures").mkdir(parents=True)
    (root / "structures" / "good.vasp").write_text(NACL_POSCAR)
    (root / "id_prop.csv").write_text(
        "/etc/passwd,2.0\n../../../../../etc/shadow,1.0\n../secret.vasp,3.0\ngood.vasp,0.5\n"
    )
    return root


def test_id_prop_entries_outside_the_folder_are_skipped_without_reading_them(
    tmp_path: Path,
) -> None:
    from fusion_tuner.data.records import load_folder

    root = hostile_folder(tmp_path)
    crystals, report = load_folder(root, None)
    assert [c.id for c in crystals] == ["good.vasp"]
    reasons = dict(report.unreadable)
    assert set(reasons) == {"/etc/passwd", "../../../../../etc/shadow", "../secret.vasp"}
    assert reasons["/etc/passwd"].startswith("an absolute path")
    assert reasons["../secret.vasp"].startswith("a path that leaves the folder")
    assert all("dataset.allow_outside_paths=true" in r for r in reasons.values())
    # allowed explicitly, they are read, and the reasons still quote nothing of them
    crystals, report = load_folder(root, None, allow_outside=True)
    assert [c.id for c in crystals] == ["good.vasp"]
    shown = " ".join(r for _, r in report.unreadable)
    # read from the folder (not the working directory), and found not to be a structure
    assert dict(report.unreadable)["../secret.vasp"].startswith("unreadable secret.vasp: POSCAR")
    for fragment in ("root:", "/bin/bash", "s3cr3t", "daemon", "nologin"):
        assert fragment not in shown, shown


def test_predict_inputs_confine_id_prop_and_quote_nothing(tmp_path: Path) -> None:
    from fusion_tuner.inference.inputs import read_inputs

    root = hostile_folder(tmp_path)
    inputs = read_inputs([root])
    assert [c.id for c in inputs.crystals] == ["good.vasp"]
    assert len(inputs.skipped) == 3
    loose = read_inputs([root, tmp_path / "secret.vasp"], allow_outside=True)
    shown = " ".join(why for _, why in loose.skipped)
    assert "not a readable POSCAR" in shown
    for fragment in ("root:", "/bin/bash", "s3cr3t"):
        assert fragment not in shown, shown


def test_allow_outside_paths_is_a_dataset_key_that_keeps_the_config_hash(tmp_path: Path) -> None:
    from fusion_tuner.config import config_hash

    folder = ("dataset=folder", f"dataset.root={hostile_folder(tmp_path)}")
    assert compose(*folder).dataset.allow_outside_paths is False
    allowed = compose(*folder, "dataset.allow_outside_paths=true")
    assert allowed.dataset.allow_outside_paths is True
    assert config_hash(allowed) == config_hash(compose(*folder))


# ------------------------------------------------ 9: one bad row is that row's problem only
def _jarvis_cell(coords: str = "[[0, 0, 0], [0.5, 0.5, 0.5]]") -> str:
    return (
        '{"lattice_mat": [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]], '
        f'"coords": {coords}, "elements": ["Na", "Cl"], "cartesian": false}}'
    )


def _pymatgen_cell(occu: str) -> str:
    site = '{{"species": [{{"element": "{e}", "occu": {o}}}], "abc": [{x}, {x}, {x}]}}'
    return (
        '{"lattice": {"matrix": [[0, 2.82, 2.82], [2.82, 0, 2.82], [2.82, 2.82, 0]]}, '
        f'"sites": [{site.format(e="Na", o=occu, x=0)}, {site.format(e="Cl", o=1, x=0.5)}]}}'
    )


BAD_CELLS = {
    "deep": '{"lattice_mat": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "occu": _pymatgen_cell('"x"'),
    "digits": _jarvis_cell("[[0, 0, " + "1" * 5000 + "], [0.5, 0.5, 0.5]]"),
}


def bad_rows_csv(path: Path) -> Path:
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "structure", "target"])
        w.writerow(["good", _jarvis_cell(), "1.0"])
        for name, cell in BAD_CELLS.items():
            w.writerow([name, cell, "2.0"])
        w.writerow(["big_target", _jarvis_cell(), "1" * 5000])
    return path


@pytest.mark.timeout(30)
def test_bad_rows_of_a_table_are_skipped_with_a_reason(tmp_path: Path) -> None:
    path = bad_rows_csv(tmp_path / "t.csv")
    crystals, report = load_table(path, "target", None, "id", None)
    assert [c.id for c in crystals] == ["good"]
    reasons = dict(report.unreadable)
    assert set(reasons) == set(BAD_CELLS)
    assert "occupancy" in reasons["occu"] and "non-finite" in reasons["digits"]
    assert report.missing_target == 1  # the 5,000-digit target is not a finite number


@pytest.mark.timeout(30)
def test_a_json_table_with_a_long_number_loads_and_a_too_deep_one_names_the_file(
    tmp_path: Path,
) -> None:
    import json

    good = json.loads(_jarvis_cell())
    rows = f'[{{"id": "a", "atoms": {json.dumps(good)}, "target": 1.0}}, ' + (
        f'{{"id": "b", "atoms": {_jarvis_cell("[[0, 0, " + "9" * 5000 + "], [0.5, 0.5, 0.5]]")},'
        ' "target": 2.0}]'
    )
    path = tmp_path / "t.json"
    path.write_text(rows)
    crystals, report = load_table(path, "target", None, "id", None)
    assert [c.id for c in crystals] == ["a"] and report.unreadable[0][0] == "b"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply") as err:
        read_table(deep)
    assert str(deep) in str(err.value)


def test_a_descriptions_file_that_is_a_json_list_names_the_file(tmp_path: Path) -> None:
    from fusion_tuner.data.records import read_descriptions

    path = tmp_path / "desc.json"
    path.write_text('["a", "b"]')
    with pytest.raises(DataError, match="holds a JSON list") as err:
        read_descriptions(path)
    assert str(path) in str(err.value)
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(DataError, match="nested too deeply"):
        read_descriptions(deep)


@pytest.mark.timeout(30)
def test_predict_inputs_skip_bad_table_rows_with_reasons(tmp_path: Path) -> None:
    from fusion_tuner.inference.inputs import read_inputs

    inputs = read_inputs([bad_rows_csv(tmp_path / "t.csv")], "target")
    assert [c.id for c in inputs.crystals] == ["good", "big_target"]
    assert {w.split(":")[-1] for w, _ in inputs.skipped} == set(BAD_CELLS)
