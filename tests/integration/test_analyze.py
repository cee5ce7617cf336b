"""Every analysis command end to end on quick demo runs, and its refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import analyze
from tests.helpers.cli import analyze_ok as ok

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def runs(analysis_runs) -> dict[str, Path]:
    return analysis_runs


def test_curves(runs, tmp_path: Path) -> None:
    out = ok(
        "curves",
        str(runs["base"]),
        str(runs["nocross"]),
        "--names",
        "Original",
        "Tuned",
        "--out",
        str(tmp_path),
    )
    res = json.loads((tmp_path / "curves.json").read_text())
    assert set(res["runs"]) == {"Original", "Tuned"}
    assert res["runs"]["Original"]["stop_epoch"] == 3
    assert (tmp_path / "curves.png").stat().st_size > 5000 and "| Original |" in out.stdout


def test_cka_cross_matrix_on_the_recorded_test_split(runs, tmp_path: Path) -> None:
    ok(
        "cka",
        "--runs",
        str(runs["base"]),
        str(runs["nocross"]),
        "--names",
        "Original",
        "Tuned",
        "--rbf",
        "--out",
        str(tmp_path),
    )
    res = json.loads((tmp_path / "cka.json").read_text())
    split = json.loads((runs["base"] / "split.json").read_text())
    assert res["n"] == len(split["test"]) == 8
    assert res["stages_A"] == [
        "graph",
        "text",
        "graph_fine",
        "text_fine",
        "graph_final",
        "text_final",
        "fused",
    ]
    assert res["stages_B"] == [
        "graph",
        "text",
        "graph_fine",
        "text_fine",
        "fused",
    ]  # no cross-modal stages
    assert np.array(res["linear"]).shape == (7, 5)
    assert set(res["linear_diagonal"]) == {"graph", "text", "graph_fine", "text_fine", "fused"}
    assert all(0 <= v <= 1 + 1e-9 for row in res["linear"] for v in row)
    assert "linear_debiased_diagonal" in res and "rbf_diagonal" in res
    assert (tmp_path / "cka_heatmap.png").is_file()


def test_cka_of_a_model_with_itself_is_one(runs, tmp_path: Path) -> None:
    ok(
        "cka",
        "--runs",
        str(runs["base"]),
        str(runs["base"] / "best_model.pt"),
        "--split",
        "val",
        "--out",
        str(tmp_path),
    )
    res = json.loads((tmp_path / "cka.json").read_text())
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in res["linear_diagonal"].values())


def test_compare_against_itself_is_zero_with_a_ci_containing_zero(runs, tmp_path: Path) -> None:
    ok("compare", "--runs", str(runs["base"]), str(runs["base"]), "--out", str(tmp_path))
    res = json.loads((tmp_path / "compare.json").read_text())
    t = res["test_mae_difference"]
    assert t["B_minus_A"] == 0.0 and t["ci95"][0] <= 0.0 <= t["ci95"][1] and t["wilcoxon_p"] == 1.0
    assert {"parity.png", "errors.png", "compare.md"} <= {p.name for p in tmp_path.iterdir()}


def test_compare_two_runs_reports_every_split(runs, tmp_path: Path) -> None:
    out = ok("compare", "--runs", str(runs["base"]), str(runs["nocross"]), "--out", str(tmp_path))
    res = json.loads((tmp_path / "compare.json").read_text())
    assert set(res["splits"]) == {"train", "val", "test"}
    metrics = json.loads((runs["base"] / "metrics.json").read_text())
    assert res["splits"]["test"]["base"]["mae"] == pytest.approx(metrics["test"]["mae"], rel=1e-4)
    assert res["by_target_range"]
    # tiny runs may not beat the training-mean predictor: then no difference is claimed
    nothing = bool(res["learned_nothing"])
    assert ("LEARNED NOTHING" in out.stdout) is nothing
    assert ("95% paired bootstrap CI" in out.stdout) is not nothing
    assert set(res["skill"]) == {"base", "nocross"}


@pytest.mark.parametrize("command", ["compare", "cka"])
def test_runs_with_different_test_ids_are_refused(runs, tmp_path: Path, command: str) -> None:
    out = analyze(
        command, "--runs", str(runs["base"]), str(runs["othersplit"]), "--out", str(tmp_path)
    )
    assert out.returncode == 2
    assert "splits differ" in out.stderr and "only in" in out.stderr


def test_ensemble_of_seeds(runs, tmp_path: Path) -> None:
    ok("ensemble", str(runs["base"]), str(runs["seed2"]), "--out", str(tmp_path))
    res = json.loads((tmp_path / "ensemble.json").read_text())
    with (tmp_path / "ensemble_predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "target", "mean", "std", "member_1", "member_2"]
    assert len(rows) == res["n_test"] == 8
    r = rows[0]
    assert float(r["mean"]) == pytest.approx(
        (float(r["member_1"]) + float(r["member_2"])) / 2, abs=2e-5
    )
    assert "uncertainty_error_spearman" in res and (tmp_path / "uncertainty.png").is_file()


def test_ensemble_of_identical_members_equals_the_member(runs, tmp_path: Path) -> None:
    ok("ensemble", str(runs["base"]), str(runs["base"]), "--out", str(tmp_path))
    res = json.loads((tmp_path / "ensemble.json").read_text())
    member = next(iter(res["members_metrics"].values()))
    assert res["ensemble"]["mae"] == pytest.approx(member["mae"], abs=1e-9)


def test_ensemble_refuses_different_test_ids(runs, tmp_path: Path) -> None:
    out = analyze("ensemble", "--glob", str(runs["base"].parent / "*"), "--out", str(tmp_path))
    assert out.returncode == 2 and "different test ids" in out.stderr


def test_data_check(runs, tmp_path: Path) -> None:
    out = ok("data", str(runs["base"]), "--out", str(tmp_path))
    res = json.loads((tmp_path / "data.json").read_text())
    assert [res["stats"][s]["n"] for s in ("train", "val", "test")] == [64, 8, 8]
    assert set(res["ks"]) == {"train_vs_val", "train_vs_test"}
    assert 0 <= res["ks"]["train_vs_test"]["p_value"] <= 1
    assert res["normalizer"]["std"] > 0 and (tmp_path / "targets.png").is_file()
    assert "outliers" in out.stdout
