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
