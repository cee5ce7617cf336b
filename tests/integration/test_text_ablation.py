"""``analyze text-ablation``: a fused run's test MAE with its texts given, permuted, blank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner.analysis.text_ablation import (
    Interval,
    cyclic_derangement,
    replace_texts,
    verdict,
)
from tests.helpers.cli import read_csv
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


def test_cyclic_derangement_moves_every_text() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 7, 50):
        src = cyclic_derangement(n, rng)
        assert sorted(src.tolist()) == list(range(n)) and np.all(src != np.arange(n))


def test_replace_texts_swaps_only_the_given_rows() -> None:
    tokens = {
        "token_ids": torch.tensor([1, 5, 2, 1, 6, 7, 2, 1, 2], dtype=torch.int32),
        "token_ptr": torch.tensor([0, 3, 7, 9]),
    }
    out = replace_texts(tokens, {0: torch.tensor([1, 6, 7, 2]), 2: torch.tensor([1, 5, 2])})
    assert out["token_ptr"].tolist() == [0, 4, 8, 11]
    assert out["token_ids"].tolist() == [1, 6, 7, 2, 1, 6, 7, 2, 1, 5, 2]
    assert out["token_ids"].dtype == torch.int32


def test_verdict_says_whether_the_text_is_used() -> None:
    used = verdict(Interval(0.05, 0.01, 0.09), "over 6 crystals")
    assert used.startswith("permuting the texts changes test MAE by +0.05 [+0.01, +0.09]")
    assert used.endswith("the model uses the text (its own texts predict better)")
    assert "does not use the text" in verdict(Interval(0.01, -0.02, 0.04), "x")
    assert "another crystal's text predicts better" in verdict(Interval(-0.05, -0.09, -0.01), "x")


def _mae(run: Path) -> float:
    rows = read_csv(run / "predictions_test.csv")
    return float(np.mean([abs(float(r["prediction"]) - float(r["target"])) for r in rows]))


def test_text_ablation_on_two_fused_runs(
    trained_run: Path, trained_run_seed7: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fusion_tuner.cli.analyze import main

    out = tmp_path / "ablation"
    args = ["text-ablation", "--runs", str(trained_run), str(trained_run_seed7), "--out", str(out)]
    assert main([*args, "--permutations", "3"]) == 0
    res = json.loads((out / "text_ablation.json").read_text())
    printed = capsys.readouterr().out
    assert len(res["runs"]) == 2 and res["permutations"] == 3
    for r, run in zip(res["runs"], (trained_run, trained_run_seed7), strict=True):
        # "given" is the run's own test prediction, as recorded
        assert r["mae"]["given"] == pytest.approx(_mae(run), rel=1e-4)
        assert r["n_test"] == len(read_csv(run / "predictions_test.csv"))
        for k in ("permuted", "blank"):
            d = r["delta"][k]
            assert d["lo"] <= d["mean"] <= d["hi"]
            assert d["mean"] == pytest.approx(r["mae"][k] - r["mae"]["given"], abs=1e-9)
            # the fused model reads its texts: other texts change its predictions
            assert r["mean_abs_prediction_change"][k] > 1e-4
    per_run = [r["delta"]["permuted"]["mean"] for r in res["runs"]]
    assert res["over_runs"]["permuted"]["mean"] == pytest.approx(np.mean(per_run))
    assert res["verdict"].startswith("permuting the texts changes test MAE by")
    assert "95 % t interval over 2 runs" in res["verdict"] and res["verdict"] in printed
    md = (out / "text_ablation.md").read_text()
    shown = md.replace("\\[", "[").replace("\\]", "]")  # Markdown escapes brackets in text
    assert res["verdict"] in shown and "| over 2 runs (t interval) |" in md
    # the same seed gives the same numbers
    again = tmp_path / "again"
    assert main([*args[:-1], str(again), "--permutations", "3"]) == 0
    assert json.loads((again / "text_ablation.json").read_text())["runs"] == res["runs"]


def test_graph_only_runs_are_refused(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from fusion_tuner.cli.analyze import main

    graph = train_run(tmp_path / "graph", "text=none", "budget.max_epochs=1")
    code = main(["text-ablation", "--runs", str(trained_run), str(graph), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "graph-only runs (text=none) read no text, so there is nothing to ablate: graph" in err
    assert not (tmp_path / "text_ablation.json").exists()
