"""``analyze compare`` on runs that learned nothing: reported as such, never as a difference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner.analysis.compare import run_compare


def fake_run(path: Path, predict, seed: int = 0) -> Path:
    """A run directory with a recorded split and the predictions of ``predict(target)``."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    (path / "best_model.pt").write_bytes(b"")
    split = {
        s: [f"{s}{i}" for i in range(n)] for s, n in (("train", 60), ("val", 20), ("test", 20))
    }
    (path / "split.json").write_text(json.dumps(split))
    data = np.random.default_rng(1)  # the same targets for both runs
    for s, ids in split.items():
        y = data.uniform(0, 4, len(ids))
        p = predict(y, rng)
        rows = ["id,target,prediction"] + [
            f"{i},{float(t)!r},{float(q)!r}" for i, t, q in zip(ids, y, p, strict=True)
        ]
        (path / f"predictions_{s}.csv").write_text("\n".join(rows) + "\n")
    return path


def test_a_comparison_of_runs_that_learned_nothing_says_so(tmp_path: Path) -> None:
    # both predict about the training mean (2.0), one a little better by chance
    mean_a = fake_run(tmp_path / "graph", lambda y, r: 2.0 + r.normal(0, 0.3, y.size))
    mean_b = fake_run(tmp_path / "fused", lambda y, r: np.full(y.size, 2.0), seed=1)
    res = run_compare([str(mean_a), str(mean_b)], tmp_path / "out")
    assert sorted(res["learned_nothing"]) == ["fused", "graph"]
    assert res["skill"]["fused"]["val"] < 0.1
    assert res["test_mae_difference"]["significance_reported"] is False
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "LEARNED NOTHING" in md and "no evidence that either model is better" in md
    assert "Wilcoxon" not in md  # no p-value stated as a difference between them
    assert "cannot separate the two configurations from seed noise" in md


def test_runs_that_learned_are_compared_with_their_skill(tmp_path: Path) -> None:
    good = fake_run(tmp_path / "a", lambda y, r: y + r.normal(0, 0.1, y.size))
    better = fake_run(tmp_path / "b", lambda y, r: y + r.normal(0, 0.05, y.size), seed=2)
    res = run_compare([str(good), str(better)], tmp_path / "out")
    assert res["learned_nothing"] == []
    mean = _targets(good, "train").mean()  # the training-mean predictor
    base = np.mean(np.abs(_targets(good, "test") - mean))
    assert res["skill"]["a"]["test"] == pytest.approx(
        1 - res["splits"]["test"]["a"]["mae"] / base, rel=1e-9
    )
    assert res["skill"]["a"]["val"] > 0.8
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "Wilcoxon signed-rank p" in md and "LEARNED NOTHING" not in md


def _targets(run: Path, split: str) -> np.ndarray:
    rows = (run / f"predictions_{split}.csv").read_text().splitlines()[1:]
    return np.array([float(r.split(",")[1]) for r in rows])


def _seed_set(sweep: Path, exp: str, vals: list[float], skill: float = 0.5) -> str:
    from tests.helpers.sweeps import fake_run as sweep_run
    from tests.helpers.sweeps import patch_metrics as _patch

    dirs = []
    for seed, v in enumerate(vals, start=1):
        d = sweep_run(sweep, exp, seed, v)
        _patch(d, val={"skill": skill})
        (d / "best_model.pt").write_bytes(b"")
        dirs.append(str(d))
    return ",".join(dirs)


def test_seed_sets_are_compared_by_their_seed_level_differences(tmp_path: Path) -> None:
    from scipy import stats

    base = [1.0, 1.1, 0.9]
    a = _seed_set(tmp_path, "baseline", base)
    b = _seed_set(tmp_path, "e06_lower_lr", [0.9, 1.02, 0.79])
    res = run_compare([a, b], tmp_path / "out")
    rec = res["val_mae_difference"]
    assert rec["method"] == "paired t" and rec["seeds"] == [3, 3]
    ci = stats.ttest_rel([0.9, 1.02, 0.79], base).confidence_interval()
    assert rec["ci95"] == pytest.approx([ci.low, ci.high])
    assert res["test_mae_difference"]["B_minus_A"] == pytest.approx(-0.29 / 3 * 1.1, rel=1e-9)
    md = (tmp_path / "out" / "compare.md").read_text()
    assert "(paired t, 3 / 3 seeds)" in md and res["learned_nothing"] == []


def test_a_single_seed_side_cannot_separate_the_models(tmp_path: Path) -> None:
    a = _seed_set(tmp_path, "baseline", [1.0, 1.1, 0.9])
    b = _seed_set(tmp_path, "e06_lower_lr", [0.8])
    res = run_compare([a, b + ","], tmp_path / "out")
    assert res["val_mae_difference"]["ci95"] is None
    assert (
        "cannot separate the models from seed noise"
        in (tmp_path / "out" / "compare.md").read_text()
    )


def test_seed_sets_that_learned_nothing_are_reported_as_such(tmp_path: Path) -> None:
    a = _seed_set(tmp_path, "graph", [1.0, 1.1, 0.9], skill=-0.2)
    b = _seed_set(tmp_path, "fused", [0.7, 0.8, 0.6], skill=0.0004)
    res = run_compare([a, b], tmp_path / "out")
    assert sorted(res["learned_nothing"]) == ["fused", "graph"]
    assert (
        "no evidence that either configuration is better"
        in (tmp_path / "out" / "compare.md").read_text()
    )
