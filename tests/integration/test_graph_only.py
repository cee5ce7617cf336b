"""``text=none`` end to end: the data pipeline without text, runs, checkpoints, analysis, sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner import build_datamodule
from tests.conftest import compose
from tests.helpers import write_folder
from tests.helpers.cli import analyze_ok as ok
from tests.helpers.cli import read_csv, sweep

pytestmark = pytest.mark.integration

GRAPH_FIELDS = ("z", "edge_index", "bond_length", "lg_edge_index", "angle_cos", "y", "batch")


def test_graph_only_data_never_describes_or_tokenises(tmp_path: Path, monkeypatch) -> None:
    """A folder without descriptions: the fused pipeline would call Atoms.describe(); the
    graph-only one reads no text, trains no tokenizer and writes no text or token entry."""
    from fusion_tuner.data import features, text

    root = write_folder(tmp_path / "folder", n=30, with_text=False)
    data = ("dataset=folder", f"dataset.root={root}")

    def refuse(*args, **kwargs):
        raise AssertionError("text work in a graph-only pipeline")

    for name in ("describe_all", "describe_crystal"):
        if hasattr(features, name):
            monkeypatch.setattr(features, name, refuse)
    for name in ("tiny_tokenizer", "hub_tokenizer", "tokenize"):
        monkeypatch.setattr(text, name, refuse)
    dm = build_datamodule(compose(*data, "text=none", cache=tmp_path / "cache"))
    entries = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "features").glob("*.pt"))
    assert entries == ["graphs"]
    assert list(dm.report["cache"]) == ["graphs"] and dm.report["modality"] == "graph"
    assert dm.tokenizer is None and dm.tokens is None
    assert sum(len(v) for v in dm.splits.values()) == 30
    batch = next(iter(dm.loader("train", batch_size=4, shuffle=False)))
    assert "input_ids" not in batch and "attention_mask" not in batch
    monkeypatch.undo()

    # the same crystals through the fused pipeline batch to exactly the same graph tensors
    fused = build_datamodule(compose(*data, cache=tmp_path / "cache"))
    assert fused.splits == dm.splits
    other = next(iter(fused.loader("train", batch_size=4, shuffle=False)))
    assert other.input_ids.shape == (4, fused.cfg.text.max_length)
    assert batch.sample_id == other.sample_id
    for key in GRAPH_FIELDS:
        assert torch.equal(batch[key], other[key]), key


@pytest.fixture(scope="session")
def pair(analysis_runs) -> dict[str, Path]:
    """A graph-only and a fused run on the same data and split."""
    return {"graph": analysis_runs["graph"], "fused": analysis_runs["base"]}


def test_graph_only_run_records_what_it_is(pair) -> None:
    from fusion_tuner.analysis.runs import predict_ids
    from fusion_tuner.rundir import load_run

    g, f = pair["graph"], pair["fused"]
    metrics = json.loads((g / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["modality"] == "graph"
    # the text, fusion and attention sizes of the tests' TINY settings have no effect here
    assert metrics["inert_text_keys"] == [
        "attention.cross_modal_hidden_dim",
        "attention.fine_grained_hidden_dim",
        "attention.fine_grained_num_heads",
        "fusion.middle_fusion_hidden_dim",
        "text.max_length",
        "text.tiny_hidden_size",
        "text.tiny_intermediate_size",
        "text.tiny_num_layers",
    ]
    assert json.loads((f / "metrics.json").read_text())["modality"] == "graph+text"
    assert not (g / "tokenizer").exists() and (f / "tokenizer").is_dir()
    report = json.loads((g / "data_report.json").read_text())
    assert report["modality"] == "graph" and list(report["cache"]) == ["graphs"]
    assert json.loads((g / "split.json").read_text()) == json.loads((f / "split.json").read_text())
    run = load_run(g)
    assert run.data_info["modality"] == "graph" and run.model.graph_only
    ids = run.split["test"]
    _, pred = predict_ids(run, ids, torch.device("cpu"))
    rows = {r["id"]: float(r["prediction"]) for r in read_csv(g / "predictions_test.csv")}
    np.testing.assert_allclose(pred, [rows[i] for i in ids], rtol=1e-5, atol=1e-6)


def test_analysis_compares_a_graph_only_run_with_a_fused_one(pair, tmp_path: Path) -> None:
    runs = [str(pair["graph"]), str(pair["fused"])]
    out = ok("compare", "--runs", *runs, "--names", "graph", "fused", "--out", str(tmp_path / "c"))
    res = json.loads((tmp_path / "c" / "compare.json").read_text())
    metrics = json.loads((pair["graph"] / "metrics.json").read_text())
    assert res["splits"]["test"]["graph"]["mae"] == pytest.approx(metrics["test"]["mae"], rel=1e-4)
    if res["learned_nothing"]:  # 3 epochs: the runs may not beat the mean predictor
        assert "LEARNED NOTHING" in out.stdout and "95% paired bootstrap CI" not in out.stdout
    else:
        assert "95% paired bootstrap CI" in out.stdout
    ok("cka", "--runs", *runs, "--out", str(tmp_path / "k"))
    cka = json.loads((tmp_path / "k" / "cka.json").read_text())
    assert cka["stages_A"] == ["graph", "fused"] and set(cka["linear_diagonal"]) == {
        "graph",
        "fused",
    }
    ok("curves", *runs, "--out", str(tmp_path / "u"))
    ok("data", runs[0], "--out", str(tmp_path / "d"))
    ok("ensemble", *runs, "--out", str(tmp_path / "e"))
    assert json.loads((tmp_path / "e" / "ensemble.json").read_text())["n_test"] == 8


@pytest.mark.slow
def test_a_graph_only_sweep_flags_inert_knobs(tmp_path: Path) -> None:
    """e03 changes fusion knobs only: under text=none it trains the baseline's exact model, and
    the summary says its knobs had no effect."""
    out = sweep(tmp_path / "sw", "text=none", "experiment=baseline,e03_two_layer_fusion")
    assert out.returncode == 0, out.stderr[-3000:]
    with (tmp_path / "sw" / "summary.csv").open() as fh:
        rows = {r["experiment"]: r for r in csv.DictReader(fh)}
    base, e03 = rows["baseline"]["flags"], rows["e03_two_layer_fusion"]["flags"]
    # both list the tests' TINY text and attention sizes; e03 adds its fusion layers and heads
    assert "graph-only: text knobs had no effect (attention.cross_modal_hidden_dim" in base
    for key in ("fusion.middle_fusion_layers", "fusion.middle_fusion_num_heads"):
        assert key in e03 and key not in base
    assert rows["e03_two_layer_fusion"]["val_mae"] == rows["baseline"]["val_mae"]
    # one seed per arm decides nothing, even for identical results; runs that do not beat
    # the training-mean predictor are not compared at all
    nothing = any(float(rows[e]["val_skill"]) < 0.1 for e in ("baseline", "e03_two_layer_fusion"))
    expected = "🚫 learned nothing" if nothing else "❓ inconclusive"
    assert rows["e03_two_layer_fusion"]["decision"] == expected
