"""predict under limits (issue 26, items 11 and 19): crystals are batched by a budget of
bonds plus bond angles and one too large is skipped with its reason, not the whole run;
``--out`` never overwrites a run's record and a folder gets ``predictions.csv``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner.data.records import Crystal
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration

A = 5.64  # NaCl's conventional cell (Angstrom)


def rocksalt(n: int, jitter: float = 0.0) -> str:
    """A POSCAR of an n x n x n supercell of NaCl's 8-atom cell."""
    rng = np.random.default_rng(int(jitter * 1000))
    base = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
    na, cl = [], []
    for i, j, k in np.ndindex(n, n, n):
        for x, y, z in base:
            na.append(((x + i) / n, (y + j) / n, (z + k) / n))
            cl.append(((x + 0.5 + i) / n, (y + j) / n, (z + k) / n))
    coords = np.array(na + cl) + rng.normal(0, jitter / (A * n), (len(na) * 2, 3))
    lines = ["NaCl", "1.0", f"{A * n} 0 0", f"0 {A * n} 0", f"0 0 {A * n}", "Na Cl"]
    lines += [f"{len(na)} {len(cl)}", "Direct", *(" ".join(f"{v:.8f}" for v in c) for c in coords)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("predict_limits") / "run"
    train_run(run, "text=none")
    return run


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"POSCAR-small{i}.vasp").write_text(rocksalt(1, jitter=0.02 * (i + 1)))
    (folder / "POSCAR-big.vasp").write_text(rocksalt(3))  # 216 atoms
    return folder


def predict(capsys, *args: str) -> tuple[int, str, str]:
    from fusion_tuner.cli.predict import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def rows(path: Path) -> dict[str, float]:
    with path.open(newline="") as fh:
        return {r["id"]: float(r["prediction"]) for r in csv.DictReader(fh)}


# ------------------------------------------------------------------ 11: an edge budget
@pytest.mark.timeout(300)
def test_a_crystal_too_large_for_the_budget_is_skipped_and_the_rest_predicted(
    trained: Path, inputs: Path, tmp_path: Path, capsys
) -> None:
    full = tmp_path / "full.csv"
    code, _, err = predict(
        capsys, "--runs", str(trained), "--structures", str(inputs), "--out", str(full)
    )
    assert code == 0, err
    assert set(rows(full)) == {"POSCAR-big.vasp", *(f"POSCAR-small{i}.vasp" for i in range(3))}
    # 216 atoms x 12 neighbours x 13 > 20,000: refused before featurising; the small ones are
    # predicted (each about 900 bonds and angles, so in several batches) exactly as before
    capped = tmp_path / "capped.csv"
    code, out, err = predict(
        capsys,
        "--runs",
        str(trained),
        "--structures",
        str(inputs),
        "--out",
        str(capped),
        "--max-edges",
        "20000",
    )
    assert code == 0, err
    got = rows(capped)
    assert set(got) == {f"POSCAR-small{i}.vasp" for i in range(3)}
    assert all(abs(got[k] - rows(full)[k]) < 1e-5 for k in got)
    assert "skipped POSCAR-big.vasp: too large to predict: 216 atoms" in err
    assert "(--max-edges)" in err and "skipped 1" in out


def test_edge_batches_respect_the_budget_and_skip_what_cannot_fit_alone() -> None:
    from fusion_tuner.data import features, structures
    from fusion_tuner.data.store import GraphStore
    from fusion_tuner.inference.predictor import _edge_batches

    crystals = []
    for i, n in enumerate((1, 1, 2, 1)):
        lattice, cart, elements = structures.read_poscar(rocksalt(n, jitter=0.01 * (i + 1)))
        crystals.append(Crystal(f"c{i}", lattice, cart, elements, 0.0))
    store = GraphStore.from_dict(features.featurize_all(crystals, 8.0, 12) | {"load_report": {}})
    cost = [
        int(store.edge_ptr[r + 1] - store.edge_ptr[r] + store.lg_ptr[r + 1] - store.lg_ptr[r])
        for r in range(4)
    ]
    assert cost[2] > 2 * max(cost[0], cost[1], cost[3])
    budget = cost[0] + cost[1]  # the first two fit together, the 64-atom one not at all
    batches, skipped = _edge_batches(store, [0, 1, 2, 3], 64, budget)
    assert batches == [[0, 1], [3]]
    assert skipped == [
        (
            "c2",
            f"too large to predict: its graph has {cost[2]} bonds and bond angles, more than "
            f"the batch budget of {budget} (--max-edges)",
        )
    ]
    assert _edge_batches(store, [0, 1, 3], 2, 10**9)[0] == [[0, 1], [2]]  # batch size too


# ------------------------------------------------------------------ 19: --out
@pytest.mark.timeout(300)
def test_out_never_overwrites_a_run_record_and_a_folder_gets_predictions_csv(
    trained: Path, inputs: Path, tmp_path: Path, capsys
) -> None:
    def predict_to(out: str) -> tuple[int, str, str]:
        return predict(capsys, "--runs", str(trained), "--structures", str(inputs), "--out", out)

    before = (trained / "metrics.json").read_bytes()
    for record in ("metrics.json", "best_model.pt", "predictions_test.csv", ".hydra/config.yaml"):
        code, _, err = predict_to(str(trained / record))
        assert code == 2, record
        assert err.startswith("error: ") and "would overwrite the run record" in err, err
        assert "featurising" not in err  # refused before any work
    assert (trained / "metrics.json").read_bytes() == before
    assert json.loads(before)["status"] == "completed"
    folder = tmp_path / "outdir"
    folder.mkdir()
    code, out, err = predict_to(str(folder))
    assert code == 0, err
    assert (
        len(rows(folder / "predictions.csv")) == 4 and f"wrote {folder / 'predictions.csv'}" in out
    )
    code, _, err = predict_to(str(tmp_path / "new") + "/")
    assert code == 0 and len(rows(tmp_path / "new" / "predictions.csv")) == 4
    beside = trained / "predictions_new.csv"  # a new file in the run directory is fine
    code, _, err = predict_to(str(beside))
    assert code == 0 and beside.is_file()
