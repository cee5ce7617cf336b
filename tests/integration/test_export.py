"""`python -m fusion_tuner.export leaderboard`: the contribution files of a run whose test ids
are the benchmark's, and the refusal (with counts) of one whose ids are not."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from fusion_tuner.cli.export import main
from fusion_tuner.data.demo import generate_demo
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration

BENCHMARK = "dft_3d_synthetic_gap"  # a constructed benchmark over the demo crystals
CSV_NAME = "AI-SinglePropertyPrediction-synthetic_gap-dft_3d-test-mae.csv"


def write_benchmark(path: Path, test: list[int], val: list[int]) -> dict[str, dict]:
    """A leaderboard-form benchmark of the 60 demo crystals, zipped like the real ones."""
    demo = generate_demo(60, 0, 0.05)
    labels = {c.id: round(c.target, 6) for c in demo}
    ids = [c.id for c in demo]
    split = {
        "train": {i: labels[i] for n, i in enumerate(ids) if n not in test and n not in val},
        "val": {ids[n]: labels[ids[n]] for n in val},
        "test": {ids[n]: labels[ids[n]] for n in test},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(path.name.removesuffix(".zip"), json.dumps(split))
    return split


@pytest.fixture(scope="module")
def run_and_benchmark(tmp_path_factory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("export")
    bench = base / f"{BENCHMARK}.json.zip"
    split = write_benchmark(bench, test=list(range(50, 60)), val=list(range(44, 50)))
    run = train_run(base / "run", f"dataset.split_file={bench}")
    return run, bench, split


def export(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["leaderboard", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_contribution_files(run_and_benchmark, tmp_path, capsys) -> None:
    run, bench, split = run_and_benchmark
    out = tmp_path / "contribution"
    code, stdout, stderr = export(
        capsys,
        str(run),
        "--benchmark",
        BENCHMARK,
        "--out",
        str(out),
        "--author-email",
        "someone@example.org",
        "--team-name",
        "team",
    )  # the run's own dataset.split_file is this benchmark's, so no --split-file
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{CSV_NAME}.zip", "metadata.json", "run.sh"]
    with zipfile.ZipFile(out / f"{CSV_NAME}.zip") as zf:
        assert zf.namelist() == [CSV_NAME]
        rows = list(csv.DictReader(io.StringIO(zf.read(CSV_NAME).decode())))
    assert list(rows[0]) == ["id", "prediction"]
    assert [r["id"] for r in rows] == list(split["test"])  # the benchmark's ids and order
    recorded = {
        r["id"]: float(r["prediction"])
        for r in csv.DictReader((run / "predictions_test.csv").open())
    }
    assert {r["id"]: float(r["prediction"]) for r in rows} == recorded
    mae = sum(abs(recorded[i] - v) for i, v in split["test"].items()) / len(rows)
    metrics = json.loads((run / "metrics.json").read_text())
    assert mae == pytest.approx(metrics["test"]["mae"], rel=1e-4)
    assert f"test MAE against {BENCHMARK}'s labels: {mae:.4g} (n=10)" in stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["author_email"] == "someone@example.org" and meta["team_name"] == "team"
    assert meta["time_taken_seconds"] == {f"{CSV_NAME}.zip": f"{metrics['wall_time_s']:.0f}"}
    assert meta["training"]["split_sizes"] == {"train": 44, "val": 6, "test": 10}
    assert f"dataset.split_file={bench}" in meta["training"]["overrides"]
    # what the leaderboard's metadata check needs and was not given is named, never invented
    assert "project_url, git_url" in stderr and "project_url" not in meta
    run_sh = (out / "run.sh").read_text()
    assert (
        "python -m fusion_tuner budget=smoke budget.max_epochs=null dataset.demo_size=60 " in run_sh
    )
    assert f"dataset.split_file={bench} hydra.run.dir=run\n" in run_sh
    assert f"--benchmark {BENCHMARK} --split-file {bench} --out ." in run_sh


def test_refused_when_test_ids_differ(run_and_benchmark, tmp_path, capsys) -> None:
    run, _, _ = run_and_benchmark
    other = tmp_path / f"{BENCHMARK}.json.zip"
    write_benchmark(other, test=list(range(48, 58)), val=list(range(42, 48)))  # 2 out, 2 in
    code, _, stderr = export(
        capsys,
        str(run),
        "--benchmark",
        BENCHMARK,
        "--out",
        str(tmp_path / "never"),
        "--split-file",
        str(other),
    )
    assert code == 2
    assert "2 of the benchmark's 10 test ids are missing from the run" in stderr
    assert "2 of the run's 10 test ids are not in the benchmark's test split" in stderr
    assert "(e.g. demo-00048, demo-00049)" in stderr and "demo-00058" in stderr
    assert not (tmp_path / "never").exists()


def test_refused_when_labels_or_benchmark_do_not_match(run_and_benchmark, tmp_path, capsys) -> None:
    run, _, split = run_and_benchmark
    scaled = tmp_path / f"{BENCHMARK}.json.zip"
    with zipfile.ZipFile(scaled, "w") as zf:
        shifted = {k: {i: v + 1.0 for i, v in part.items()} for k, part in split.items()}
        zf.writestr(scaled.name.removesuffix(".zip"), json.dumps(shifted))
    code, _, stderr = export(
        capsys,
        str(run),
        "--benchmark",
        BENCHMARK,
        "--out",
        str(tmp_path / "x"),
        "--split-file",
        str(scaled),
    )
    assert (
        code == 2 and "10 of the run's 10 test targets differ from the benchmark's labels" in stderr
    )
    code, _, stderr = export(
        capsys, str(run), "--benchmark", "dft_3d_mbj_bandgap", "--out", str(tmp_path / "y")
    )
    assert code == 2 and "give --split-file" in stderr and "another benchmark's" in stderr
    code, _, stderr = export(capsys, str(run), "--benchmark", "nonsense", "--out", str(tmp_path))
    assert code == 2 and "does not start with a JARVIS dataset name" in stderr


def test_real_benchmark_refuses_a_run_on_the_offline_records(
    run_and_benchmark, tmp_path, capsys
) -> None:
    """The real optb88vdw_bandgap benchmark has 5,572 test ids; a run can hold few of them.
    The file is the bundled one, named as ``sample://`` (not a path)."""
    run, _, _ = run_and_benchmark
    real = "sample://jarvis_leaderboard_dft3d/SinglePropertyPrediction_dft_3d_optb88vdw_bandgap.json.zip"
    code, _, stderr = export(
        capsys,
        str(run),
        "--benchmark",
        "dft_3d_optb88vdw_bandgap",
        "--out",
        str(tmp_path),
        "--split-file",
        real,
    )
    assert code == 2
    assert "5,572 of the benchmark's 5,572 test ids are missing from the run" in stderr
    assert "10 of the run's 10 test ids are not in the benchmark's test split" in stderr
