"""`python -m fusion_tuner.predict` and ``fusion_tuner.predict``: a run's own test crystals,
written as new POSCAR files, get exactly the run's recorded test predictions; ensembles, texts
and bad inputs."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner.data.demo import generate_demo
from fusion_tuner.errors import PredictError
from tests.helpers.cli import in_process, module_cli, run_cli
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration

DEMO_SIZE = 60  # TINY's dataset.demo_size


def write_alignn_folder(root: Path, ids: list[str], with_texts: bool) -> dict[str, str]:
    """The demo crystals ``ids`` as POSCAR files + id_prop.csv (+ descriptions.csv); returns
    their texts by id (the demo generator's own texts: what the run trained on)."""
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    demo = {c.id: c for c in generate_demo(DEMO_SIZE, 0, 0.05)}
    root.mkdir(parents=True)
    rows, texts = [], {}
    for cid in ids:
        c = demo[cid]
        atoms = Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
        Poscar(atoms).write_file(str(root / f"POSCAR-{cid}.vasp"))
        rows.append(f"POSCAR-{cid}.vasp,{c.target!r}")
        texts[cid] = c.text
    (root / "id_prop.csv").write_text("\n".join(rows) + "\n")
    if with_texts:
        with (root / "descriptions.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([["id", "description"], *texts.items()])
    return texts


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def recorded(run: Path) -> dict[str, tuple[float, float]]:
    """``predictions_test.csv``: canonical id -> (target, prediction)."""
    return {
        r["id"]: (float(r["target"]), float(r["prediction"]))
        for r in read_rows(run / "predictions_test.csv")
    }


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def predict_cli(capsys: pytest.CaptureFixture, *args: str) -> Result:
    """The command's ``main`` in this process (``python -m`` itself: see the first test)."""
    from fusion_tuner.cli.predict import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


@pytest.fixture(scope="session")
def runs(trained_run: Path, trained_run_seed7: Path) -> tuple[Path, Path]:
    """Two tiny demo runs that differ only in the model seed (one test split)."""
    return trained_run, trained_run_seed7


@pytest.fixture(scope="module")
def test_folders(runs, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The run's test crystals as (ALIGNN folder with descriptions.csv, the same without it,
    a descriptions CSV keyed by the demo ids)."""
    base = tmp_path_factory.mktemp("predict_inputs")
    ids = json.loads((runs[0] / "split.json").read_text())["test"]
    texts = write_alignn_folder(base / "with_texts", ids, with_texts=True)
    write_alignn_folder(base / "bare", ids, with_texts=False)
    desc = base / "descriptions.csv"
    with desc.open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "description"], *texts.items()])
    return base / "with_texts", base / "bare", desc


@pytest.mark.parametrize("how", ["in_process", pytest.param("command", marks=pytest.mark.e2e)])
def test_own_test_crystals_reproduce_predictions_test_csv(
    runs, test_folders, tmp_path, how
) -> None:
    from fusion_tuner.cli.predict import main

    _, bare, desc = test_folders
    out = tmp_path / "pred.csv"
    args = ["--runs", str(runs[0]), "--structures", str(bare), "--descriptions", str(desc)]
    args += ["--out", str(out), "--batch-size", "4"]
    if how == "command":
        proc = module_cli("fusion_tuner.predict", *args)
    else:
        proc = in_process(main, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_rows(out)
    assert list(rows[0]) == ["id", "target", "prediction"]
    want = recorded(runs[0])
    assert sorted(r["id"].removeprefix("POSCAR-").removesuffix(".vasp") for r in rows) == sorted(
        want
    )
    for r in rows:
        target, prediction = want[r["id"].removeprefix("POSCAR-").removesuffix(".vasp")]
        assert float(r["target"]) == pytest.approx(target, rel=1e-5, abs=1e-6)
        assert float(r["prediction"]) == pytest.approx(prediction, rel=1e-4, abs=1e-5)
    test_mae = json.loads((runs[0] / "metrics.json").read_text())["test"]["mae"]
    assert f"MAE against the inputs' targets: {test_mae:.4g} (n={len(rows)})" in proc.stdout


def test_python_api_is_the_function_and_the_command_module_still_runs(runs, test_folders) -> None:
    import fusion_tuner
    from fusion_tuner import predict
    from fusion_tuner.cli.predict import main

    assert callable(predict) and predict.__module__ == "fusion_tuner.inference.predictor"
    assert fusion_tuner.predict is predict and callable(main)
    table = predict(str(runs[0]), test_folders[0])  # its descriptions.csv gives the texts
    want = recorded(runs[0])
    assert table.columns == ["id", "target", "prediction"] and not table.skipped
    got = {r["id"].removeprefix("POSCAR-").removesuffix(".vasp"): r["prediction"] for r in table}
    assert got.keys() == want.keys()
    for cid, value in got.items():
        assert value == pytest.approx(want[cid][1], rel=1e-4, abs=1e-5)


def test_ensemble_mean_std_and_members(runs, test_folders, tmp_path, capsys) -> None:
    from fusion_tuner import predict

    singles = [{r["id"]: r["prediction"] for r in predict([run], test_folders[0])} for run in runs]
    out = tmp_path / "ensemble.csv"
    proc = predict_cli(
        capsys, "--runs", *map(str, runs), "--structures", str(test_folders[0]), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_rows(out)
    assert list(rows[0]) == ["id", "target", "mean", "std", "member_1", "member_2"]
    assert f"member_2: {runs[1]}" in proc.stdout
    for r in rows:
        members = np.array([singles[0][r["id"]], singles[1][r["id"]]])
        assert float(r["member_1"]) == pytest.approx(members[0], rel=1e-5, abs=1e-6)
        assert float(r["member_2"]) == pytest.approx(members[1], rel=1e-5, abs=1e-6)
        assert float(r["mean"]) == pytest.approx(members.mean(), rel=1e-5, abs=1e-6)
        assert float(r["std"]) == pytest.approx(members.std(), rel=1e-4, abs=1e-6)


def test_ensemble_of_different_targets_is_refused(runs, test_folders, tmp_path, capsys) -> None:
    other = tmp_path / "other_target"
    other.mkdir()
    ckpt = torch.load(runs[1] / "best_model.pt", weights_only=True)
    ckpt["config"]["dataset"]["target"] = "formation_energy_peratom"
    torch.save(ckpt, other / "best_model.pt")
    proc = predict_cli(
        capsys,
        "--runs",
        str(runs[0]),
        str(other),
        "--structures",
        str(test_folders[0]),
        "--out",
        str(tmp_path / "never.csv"),
    )
    assert proc.returncode == 2
    assert "different targets" in proc.stderr and "formation_energy_peratom" in proc.stderr
    assert not (tmp_path / "never.csv").exists()


def test_missing_descriptions_are_refused_with_the_fix(
    runs, test_folders, tmp_path, capsys, caplog
) -> None:
    caplog.set_level(logging.INFO)
    proc = predict_cli(
        capsys,
        "--runs",
        str(runs[0]),
        "--structures",
        str(test_folders[1]),
        "--out",
        str(tmp_path / "never.csv"),
    )
    assert proc.returncode == 2
    assert "dataset's own texts (dataset.source=demo" in proc.stderr
    assert "--descriptions FILE" in proc.stderr
    assert not [r for r in caplog.records if "featuris" in r.getMessage()]  # before any work
    assert not (tmp_path / "never.csv").exists()
    from fusion_tuner import predict

    with pytest.raises(PredictError, match="have no text"):
        predict([runs[0]], test_folders[1])
    assert not [r for r in caplog.records if "featuris" in r.getMessage()]
    predict([runs[0]], test_folders[1], descriptions=test_folders[2])  # the fix works
    assert [r for r in caplog.records if "featuris" in r.getMessage()]


def test_bad_inputs_are_listed_and_skipped(runs, test_folders, tmp_path, capsys) -> None:
    _, bare, desc = test_folders
    good = sorted(bare.glob("POSCAR-*.vasp"))[0]
    (tmp_path / "broken.vasp").write_text("this is not a POSCAR\n")
    (tmp_path / "notes.txt").write_text("hello\n")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    out = tmp_path / "pred.csv"
    args = ["--runs", str(runs[0]), "--descriptions", str(desc), "--out", str(out)]
    inputs = [good, tmp_path / "broken.vasp", tmp_path / "notes.txt", empty, tmp_path / "nope"]
    proc = predict_cli(capsys, *args, "--structures", *map(str, inputs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["id"] for r in read_rows(out)] == [good.name]
    assert list(read_rows(out)[0]) == ["id", "prediction"]  # a lone file carries no target
    err = proc.stderr
    assert f"skipped {tmp_path / 'broken.vasp'}: unreadable" in err
    assert f"skipped {tmp_path / 'notes.txt'}: not a structure file" in err
    assert f"skipped {empty}: no structure files" in err
    assert f"skipped {tmp_path / 'nope'}: not found" in err
    # a crystal the descriptions file does not cover is skipped, the others go on
    partial = tmp_path / "partial.csv"
    partial.write_text("id,description\n")
    proc = predict_cli(
        capsys,
        "--runs",
        str(runs[0]),
        "--descriptions",
        str(partial),
        "--out",
        str(out),
        "--structures",
        str(good),
        str(tmp_path / "broken.vasp"),
    )
    assert proc.returncode == 1  # nothing could be predicted
    assert f"skipped {good.name}: no description in {partial}" in proc.stderr
    assert "nothing could be predicted" in proc.stderr


@pytest.mark.slow
def test_bundled_alignn_folder_run_reproduces_its_test_predictions(tmp_path) -> None:
    """A run trained on the bundled 50-structure ALIGNN folder by name (dataset=jarvis_sample50,
    texts from its describe file): predicting on the same folder, named as ``sample://``, with
    that file gives its recorded test predictions."""
    root = "sample://jarvis_dft3d_alignn_sample50"
    texts = "sample://jarvis_dft3d_mini/describe_text.json.zip"
    run = tmp_path / "run"
    run_cli(run, "dataset=jarvis_sample50", "scheduler.epochs=2")
    from fusion_tuner import predict

    with pytest.raises(PredictError, match=r"dataset\.descriptions="):
        predict([run], root)
    table = predict([run], root, descriptions=texts)
    assert len(table) == 50 and not table.skipped
    got = {r["id"]: r["prediction"] for r in table}
    for cid, (_, prediction) in recorded(run).items():
        assert got[cid] == pytest.approx(prediction, rel=1e-4, abs=1e-5)


def test_graph_only_run_predicts_without_texts_or_tokenizer(test_folders, tmp_path) -> None:
    """A ``text=none`` run has no tokenizer/ and reads no text: bare structures are enough."""
    run = train_run(tmp_path / "graph", "text=none")
    assert not (run / "tokenizer").exists()
    _, bare, _ = test_folders
    from fusion_tuner import predict

    table = predict([run], [bare], batch_size=4)
    want = recorded(run)
    got = {r["id"].removeprefix("POSCAR-").removesuffix(".vasp"): r for r in table}
    assert sorted(got) == sorted(want) and not table.skipped
    for cid, (target, prediction) in want.items():
        assert got[cid]["target"] == pytest.approx(target, rel=1e-5, abs=1e-6)
        assert got[cid]["prediction"] == pytest.approx(prediction, rel=1e-4, abs=1e-5)
