"""The real samples bundled as package data, and the ``sample://`` / ``data://`` paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_tuner import paths
from fusion_tuner.compose import compose_config
from fusion_tuner.config import dataset_file_problems
from fusion_tuner.data import records
from fusion_tuner.data.tables import load_table
from fusion_tuner.errors import DataError

SAMPLES = paths.SAMPLES_DIR


def test_resolve_names_bundled_downloaded_and_plain_paths(monkeypatch, tmp_path: Path) -> None:
    assert paths.resolve("sample://perov5_castelli/perov5_val.csv.zip") == (
        SAMPLES / "perov5_castelli" / "perov5_val.csv.zip"
    )
    assert paths.resolve("sample://jarvis_dft3d_alignn_sample50/") == (
        SAMPLES / "jarvis_dft3d_alignn_sample50"
    )
    monkeypatch.setenv("FUSION_TUNER_DATA_DIR", str(tmp_path))
    assert paths.resolve("data://perov_5/train.csv") == tmp_path / "perov_5" / "train.csv"
    monkeypatch.delenv("FUSION_TUNER_DATA_DIR")
    monkeypatch.setenv("FUSION_TUNER_CACHE_DIR", str(tmp_path / "c"))
    assert paths.resolve("data://mp_20") == tmp_path / "c" / "data" / "mp_20"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.resolve("~/x.csv") == tmp_path / "x.csv"
    assert paths.resolve("rel/x.csv") == Path("rel/x.csv")


def test_samples_ship_with_their_licences_and_stay_small() -> None:
    assert paths.sample_names() == [
        "jarvis_dft3d_alignn_sample50",
        "jarvis_dft3d_mini",
        "jarvis_leaderboard_dft3d",
        "perov5_castelli",
    ]
    readme = (SAMPLES / "README.md").read_text()
    for name in paths.sample_names():
        assert f"## `{name}/`" in readme
    assert "Permission is hereby granted" in (SAMPLES / "LICENSE-CDVAE-MIT.txt").read_text()
    nist = (SAMPLES / "LICENSE-NIST-JARVIS.rst").read_text()
    assert "provided that this notice and disclaimer of warranty appears in all copies" in nist
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 3_000_000, total


def test_missing_named_path_lists_the_samples_or_the_download() -> None:
    cfg = compose_config(["dataset=table", "dataset.path=sample://perov5/val.csv"], check=False)
    [(key, problem)] = dataset_file_problems(cfg.dataset)
    assert key == "path"
    assert "no sample 'perov5'" in problem and "perov5_castelli" in problem
    cfg = compose_config(["dataset=table", "dataset.path=data://mp_20/train.csv"], check=False)
    [(_, problem)] = dataset_file_problems(cfg.dataset)
    assert "python -m fusion_tuner.data download mp_20" in problem


def test_perov5_sample_option_reads_the_bundled_table() -> None:
    cfg = compose_config(["dataset=perov5_sample"])
    d = cfg.dataset
    assert (d.source, d.target, d.structure_column, d.id_column) == (
        "table",
        "heat_ref",
        "cif",
        "material_id",
    )
    assert dataset_file_problems(d) == []
    crystals, report = load_table(paths.resolve(d.path), d.target, "cif", "material_id", 20)
    assert report.n_raw == 3787 and len(crystals) == 20
    assert all(len(c.elements) == 5 for c in crystals)


def test_jarvis_sample50_option_reads_the_bundled_folder_and_texts() -> None:
    cfg = compose_config(["dataset=jarvis_sample50"])
    d = cfg.dataset
    assert dataset_file_problems(d) == []
    crystals, report = records.load_folder(paths.resolve(d.root), None)
    assert len(crystals) == 50 and report.n_raw == 50
    assert sum(c.target > 0 for c in crystals) == 22
    texts = records.read_descriptions(paths.resolve(d.descriptions))
    assert len(texts) == 1104


@pytest.mark.parametrize(("store", "n"), [("store_sample50", 50), ("store_full", 1104)])
def test_bundled_jarvis_store_reads_without_jarvis_tools_download(store: str, n: int) -> None:
    folder = paths.resolve(f"sample://jarvis_dft3d_mini/{store}")
    assert sorted(p.name for p in folder.iterdir()) == [records.RECORDS_FILE]
    for name in ("dft_3d", "dft_3d_2021"):  # whatever the name: read as it is
        crystals, report = records.load_jarvis(name, "formation_energy_peratom", folder, None)
        assert report.n_raw == n and report.source == f"jarvis:{name}"
    crystals, _ = records.load_jarvis("dft_3d", "optb88vdw_bandgap", folder, 5)
    assert [c.id for c in crystals][:1] == ["JVASP-10"] and len(crystals) == 5
    with pytest.raises(DataError, match="'no_such_key' is not a numeric key"):
        records.load_jarvis("dft_3d", "no_such_key", folder, None)


def test_predict_inputs_take_sample_paths() -> None:
    from fusion_tuner.inference.inputs import read_inputs

    got = read_inputs(
        [
            "sample://jarvis_dft3d_alignn_sample50/structures/POSCAR-JVASP-655.vasp",
            "sample://jarvis_dft3d_alignn_sample50",  # an ALIGNN folder: its 50 labelled
        ],
        target="optb88vdw_bandgap",
    )
    assert not got.skipped
    assert len(got.crystals) == 51
    assert got.crystals[0].id == "POSCAR-JVASP-655.vasp"
