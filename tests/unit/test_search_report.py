"""The search summary from a journal and run directories written by hand: the best trial, its
command and experiment file, the comparison with the baseline and its seed noise, the quick-budget
caveat, failed and pruned trials, and the plots (drawn, or named with the reason they are not)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import distribution_to_json
from optuna.trial import TrialState

from fusion_tuner.rundir import RunDir
from fusion_tuner.search import RECORD_FILE
from fusion_tuner.search.search_summary import (
    BEST_YAML,
    SUMMARY_JSON,
    SUMMARY_MD,
    write_search_summary,
)
from fusion_tuner.search.space import parse_space
from fusion_tuner.search.study import PrunerSpec, SamplerSpec, open_study, write_record

optuna.logging.set_verbosity(optuna.logging.ERROR)
CONF = Path(__file__).resolve().parents[2] / "conf"

SPACE = parse_space(
    {
        "regularization.graph_dropout": "interval(0.15, 0.3)",
        "regularization": "choice(baseline, aggressive)",
        "scheduler.scheduler": "cosine",
    },
    ["+search=tier1", "budget=quick", "dataset.demo_size=60"],
)


def record(study_name: str, baseline_runs: int, n_trials: int) -> dict[str, Any]:
    return {
        "study": study_name,
        "direction": "minimize",
        "n_trials": n_trials,
        "n_jobs": 1,
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": None},
        "pruner": {"name": "median"},
        "baseline_runs": baseline_runs,
        "base_values": {"regularization.graph_dropout": 0.15, "regularization": "baseline"},
        "dimensions": [
            {"name": d.name, "key": d.key, "distribution": distribution_to_json(d.distribution)}
            for d in SPACE.dimensions.values()
        ],
        "fixed": SPACE.fixed,
        "search_keys": ["regularization.graph_dropout", "regularization", "scheduler.scheduler"],
        "command_overrides": ["+search=tier1", "budget=quick", "hydra.sweeper.seed=0"],
    }


def add_trial(
    study: Any, sweep_dir: Path, params: dict, outcome: str, value: float, **attrs: Any
) -> None:
    study.enqueue_trial(params, user_attrs=attrs)
    t = study.ask(SPACE.distributions)
    t.report(value * 1.5, 1)
    t.report(value, 2)
    metrics: dict[str, Any] = {
        "status": "completed" if outcome != "fail" else "failed",
        "val": {"mae": value},
        "test": {"mae": value + 0.1},
        "epochs_run": 2,
        "budget": "quick",
        "seed": attrs.get("random_seed", 42),
    }
    if outcome == "pruned":
        metrics["stop_reason"] = "pruned"
    RunDir(sweep_dir / f"trial-{t.number:04d}").write_metrics(metrics)
    if outcome == "complete":
        study.tell(t, value)
    elif outcome == "pruned":
        study.tell(t, state=TrialState.PRUNED)
    else:
        t.set_user_attr("note", "ValueError: boom")
        study.tell(t, state=TrialState.FAIL)


@pytest.fixture
def search(tmp_path: Path) -> Path:
    study = open_study(tmp_path, None, "minimize", PrunerSpec("median"))
    study.sampler = SamplerSpec("tpe", 0).build(None, 0, False)
    base = {"regularization.graph_dropout": 0.15, "regularization": "baseline"}
    for seed, v in ((42, 1.00), (43, 1.04), (44, 0.96)):
        add_trial(study, tmp_path, base, "complete", v, baseline=True, random_seed=seed)
    add_trial(
        study,
        tmp_path,
        {"regularization.graph_dropout": 0.2, "regularization": "aggressive"},
        "complete",
        0.7,
    )
    add_trial(
        study,
        tmp_path,
        {"regularization.graph_dropout": 0.25, "regularization": "baseline"},
        "pruned",
        3.0,
    )
    add_trial(
        study,
        tmp_path,
        {"regularization.graph_dropout": 0.3, "regularization": "baseline"},
        "fail",
        0.0,
    )
    write_record(tmp_path, record(study.study_name, baseline_runs=3, n_trials=6))
    return tmp_path


def test_summary_names_the_best_trial_with_its_command_and_caveats(search: Path) -> None:
    summary = write_search_summary(search)
    assert summary.counts == {
        "completed": 4,
        "pruned": 1,
        "failed": 1,
        "unfinished": 0,
        "waiting": 0,
    }
    assert summary.done
    best = summary.best
    assert best is not None and best["trial"] == 3 and best["value"] == 0.7
    assert best["command"] == (
        "python -m fusion_tuner scheduler.scheduler=cosine budget=quick dataset.demo_size=60 "
        "regularization.graph_dropout=0.2 regularization=aggressive"
    )
    assert best["confirm_command"].endswith("regularization=aggressive random_seed=1,2,3")
    md = (search / SUMMARY_MD).read_text()
    assert "**6 of 6 trials ended:** 4 completed, 1 pruned, 1 failed." in md
    assert "budget=quick" in md and "pipeline check, not a result" in md
    assert "The best of 4 completed trials is chosen on validation MAE" in md
    assert "| 4 | pruned at epoch 2 |" in md
    assert "- trial 5 (trial-0005): ValueError: boom" in md
    assert (
        f"python -m fusion_tuner -m +search=tier1 budget=quick hydra.sweeper.seed=0 "
        f"hydra.sweep.dir={search} hydra.sweeper.n_trials=10\n"
    ) in md
    data = json.loads((search / SUMMARY_JSON).read_text())
    assert [t["state"] for t in data["trials"]] == ["completed"] * 4 + ["pruned", "failed"]
    assert [t["baseline"] for t in data["trials"]] == [True, True, True, False, False, False]


def test_a_grid_is_continued_up_to_its_size_and_no_further(search: Path) -> None:
    """A grid search's "continue" command asks for the grid's size at most; once every point was
    asked for, the summary says the grid is complete instead of suggesting repeats."""
    grid = json.loads((search / RECORD_FILE).read_text())  # 6 trials asked for, 6 ended
    grid["sampler"] = {"name": "grid", "seed": 0, "n_startup_trials": None}
    write_record(search, grid | {"max_trials": 8})
    write_search_summary(search)
    md = (search / SUMMARY_MD).read_text()
    assert f"hydra.sweep.dir={search} hydra.sweeper.n_trials=8\n" in md
    write_record(search, grid | {"max_trials": 6})
    write_search_summary(search)
    md = (search / SUMMARY_MD).read_text()
    assert "The grid is complete: all 6 of its trials have been asked for" in md
    assert "Continue this search" not in md and "hydra.sweeper.n_trials=" not in md


def test_the_advantage_over_the_baseline_is_stated_with_its_seed_noise(search: Path) -> None:
    cmp = write_search_summary(search).comparison
    # baseline 1.00, 1.04, 0.96: mean 1.0, sd 0.04; margin 2 * 0.04 * sqrt(1 + 1/3)
    assert cmp["baseline_val_mae"] == pytest.approx(1.0)
    assert cmp["seed_sd"] == pytest.approx(0.04)
    assert cmp["margin"] == pytest.approx(2 * 0.04 * (4 / 3) ** 0.5)
    assert cmp["delta"] == pytest.approx(-0.3) and cmp["beyond_noise"] is True
    md = (search / SUMMARY_MD).read_text()
    assert "Best − baseline = -0.3 (-30.0%" in md
    assert "larger than the seed noise" in md


def test_within_the_seed_noise_is_said_so(tmp_path: Path) -> None:
    study = open_study(tmp_path, None, "minimize", PrunerSpec())
    base = {"regularization.graph_dropout": 0.15, "regularization": "baseline"}
    for seed, v in ((42, 1.0), (43, 1.2)):
        add_trial(study, tmp_path, base, "complete", v, baseline=True, random_seed=seed)
    add_trial(
        study,
        tmp_path,
        {"regularization.graph_dropout": 0.2, "regularization": "baseline"},
        "complete",
        0.95,
    )
    write_record(tmp_path, record(study.study_name, baseline_runs=2, n_trials=3))
    summary = write_search_summary(tmp_path)
    assert summary.comparison["beyond_noise"] is False
    assert "within the seed noise" in (tmp_path / SUMMARY_MD).read_text()


def test_best_experiment_file_composes_to_the_best_trial(search: Path) -> None:
    from hydra import compose, initialize_config_dir

    from fusion_tuner.config import register_configs

    write_search_summary(search)
    text = (search / BEST_YAML).read_text()
    assert text.startswith("# @package _global_\n")
    comments = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert "(not part of this experiment): budget=quick dataset.demo_size=60" in comments
    assert max(len(line) for line in text.splitlines()) <= 100
    (search / "experiment").mkdir()
    (search / "experiment" / "best.yaml").write_text(text)
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(
            config_name="config",
            overrides=[f"hydra.searchpath=[file://{search}]", "experiment=best"],
        )
    assert cfg.regularization.graph_dropout == 0.2
    assert cfg.regularization.weight_decay == 0.002  # regularization=aggressive's
    assert cfg.scheduler.scheduler == "cosine"  # the search's own fixed setting
    assert cfg.budget.name == "full"  # a run setting of the search, not of the experiment
    assert cfg.experiment_name.endswith("_trial3")


def test_plots_are_drawn_or_named_with_the_reason(search: Path, tmp_path_factory) -> None:
    summary = write_search_summary(search)
    assert summary.plots == dict.fromkeys(summary.plots, "")
    for name in summary.plots:
        assert (search / name).read_bytes().startswith(b"\x89PNG")
    # one completed trial: no importances, and no stale file of an earlier summary
    lone = tmp_path_factory.mktemp("lone")
    study = open_study(lone, None, "minimize", PrunerSpec())
    add_trial(
        study,
        lone,
        {"regularization.graph_dropout": 0.2, "regularization": "baseline"},
        "complete",
        1.0,
    )
    write_record(lone, record(study.study_name, baseline_runs=0, n_trials=4))
    (lone / "param_importances.png").write_bytes(b"stale")
    summary = write_search_summary(lone)
    assert summary.plots["param_importances.png"] == "needs 2 completed trials"
    assert not (lone / "param_importances.png").exists()
    assert not summary.done  # 1 of 4 trials
    md = (lone / SUMMARY_MD).read_text()
    assert "- param importances: not drawn (needs 2 completed trials)" in md
    assert "ran no baseline trial" in md


def test_a_hostile_failure_note_is_escaped_in_the_search_summary(search: Path) -> None:
    from tests.helpers.sweeps import EVIL_NAME, assert_inert, rendered

    study = open_study(search, None, "minimize", PrunerSpec("median"))
    t = study.ask(SPACE.distributions)
    RunDir(search / f"trial-{t.number:04d}").write_metrics({"status": "failed", "error": "x"})
    t.set_user_attr("note", EVIL_NAME)
    study.tell(t, state=TrialState.FAIL)
    write_record(search, record(study.study_name, baseline_runs=3, n_trials=7))
    write_search_summary(search)
    text = (search / SUMMARY_MD).read_text()
    assert "alert(1)" in text  # shown, as text
    assert not re.search(r"(?<!\\)(<(script|img)|\]\(javascript)", text)
    assert_inert(rendered(text), links=False)
