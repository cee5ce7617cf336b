"""The CLI on data settings: a real table data set, and data errors caught before any run dir."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fusion_tuner.paths import SAMPLES_DIR
from tests.helpers.cli import TINY, run_cli, summary_rows, sweep

pytestmark = pytest.mark.integration


@pytest.mark.e2e
def test_bundled_perovskites_by_name_train_and_predict_from_an_empty_directory(
    tmp_path: Path,
) -> None:
    """``dataset=perov5_sample`` from a directory with no data in it, then ``predict`` on the
    bundled table named as ``sample://``: every crystal, with its ``heat_ref`` target."""
    repo = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(repo), "PYTHONUNBUFFERED": "1"}
    empty = tmp_path / "empty"
    empty.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", *args], cwd=empty, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    cli(
        "fusion_tuner",
        *TINY,
        "dataset=perov5_sample",
        "text=none",
        "dataset.limit=60",
        "scheduler.epochs=1",
        "hydra.run.dir=run",
    )
    metrics = json.loads((empty / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["target"] == "heat_ref"
    report = json.loads((empty / "run" / "data_report.json").read_text())
    assert report["load"]["n_raw"] == 3787 and report["n_usable"] == 60
    proc = cli(
        "fusion_tuner.predict",
        "--runs",
        "run",
        "--structures",
        "sample://perov5_castelli/perov5_val.csv.zip",
        "--out",
        "pred.csv",
    )
    assert "MAE against the inputs' targets" in proc.stdout + proc.stderr
    with (empty / "pred.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3787 and list(rows[0]) == ["id", "target", "prediction"]
    with zipfile.ZipFile(SAMPLES_DIR / "perov5_castelli" / "perov5_val.csv.zip") as zf:
        first = next(csv.DictReader(io.TextIOWrapper(zf.open("perov5_val.csv"), "utf-8")))
    assert rows[0]["id"] == first["material_id"] == "18517"
    assert float(rows[0]["target"]) == pytest.approx(float(first["heat_ref"]), rel=1e-5)


@pytest.mark.e2e
def test_real_perovskite_table_trains_from_the_cli(samples: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "perov"
    run_cli(
        run_dir,
        "dataset=table",
        f"dataset.path={samples / 'perov5_castelli' / 'perov5_val.csv.zip'}",
        "dataset.structure_column=cif",
        "dataset.id_column=material_id",
        "dataset.target=heat_ref",
        "dataset.limit=60",
        "budget.max_epochs=2",
        f"dataset.cache_dir={tmp_path / 'cache'}",
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["target"] == "heat_ref"
    assert metrics["test"]["n"] == 6 and metrics["test"]["mae"] > 0
    report = json.loads((run_dir / "data_report.json").read_text())
    assert report["load"]["structure_kinds"] == {"cif": 60}
    assert report["load"]["n_raw"] == 3787 and report["n_usable"] == 60
    split = json.loads((run_dir / "split.json").read_text())
    ids = split["train"] + split["val"] + split["test"]
    assert len(set(ids)) == 60 and "18517" in ids  # material_id of the file's first row


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=folder", "dataset.root={gone}"], "dataset.root={gone}: no such folder"),
        (["dataset=table", "dataset.path={gone}.csv"], "dataset.path={gone}.csv: no such file"),
        (["dataset.split_file={gone}.json"], "dataset.split_file={gone}.json: no such file"),
        (["dataset.root={tmp}"], "add dataset=folder"),
    ],
    ids=["root", "path", "split_file", "root without dataset=folder"],
)
def test_data_config_errors_stop_a_run_before_its_directory_exists(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    run_dir = tmp_path / "run"
    values = {"gone": tmp_path / "gone", "tmp": tmp_path}
    proc = run_cli(run_dir, *(o.format(**values) for o in overrides), check=False)
    assert proc.returncode == 2
    assert message.format(**values) in proc.stderr
    assert not run_dir.exists()


def test_a_sweep_with_a_missing_fixed_path_stops_before_any_run(tmp_path: Path) -> None:
    out = sweep(
        tmp_path / "sw", "dataset=folder", f"dataset.root={tmp_path / 'gone'}", "random_seed=1,2"
    )
    assert out.returncode == 2
    assert f"dataset.root={tmp_path / 'gone'}: no such folder" in out.stderr
    assert not (tmp_path / "sw").exists()


@pytest.mark.e2e
def test_a_swept_missing_path_fails_only_its_own_runs(tmp_path: Path) -> None:
    gone = [tmp_path / "gone1", tmp_path / "gone2"]
    out = sweep(
        tmp_path / "sw",
        "dataset=folder",
        f"dataset.root={gone[0]},{gone[1]}",
        "hydra.sweep.subdir=run${hydra.job.num}",
    )
    assert out.returncode != 0
    rows = summary_rows(tmp_path / "sw")
    for i, path in enumerate(gone):
        assert rows[f"run{i}"]["status"] == "failed"
        assert f"dataset.root={path}: no such folder" in rows[f"run{i}"]["error"]
