"""``python -m fusion_tuner -m hydra/sweeper=optuna`` end to end on tiny demo data: a TPE search
with its summary and plots, pruning, resuming a killed search, parallel trials through
``hydra/launcher=local``, and a mistake in the search refused before anything runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cli import (
    LR_SPACE,
    QUICK,
    load_study,
    log_span,
    search,
    search_cmd,
    study_states,
    trials,
)
from tests.helpers.cli import trial_metrics as metrics

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_tpe_search_of_six_trials_with_summary_and_plots(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra.sweeper.n_trials=6",
        "regularization.graph_dropout=interval(0.1,0.3)",
        "scheduler.learning_rate=tag(log,interval(0.0003,0.003))",
        "regularization=choice(baseline,aggressive)",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert study_states(sweep_dir) == dict.fromkeys(range(6), "COMPLETE")
    names = sorted(p.name for p in sweep_dir.glob("trial-*"))
    assert names == [f"trial-{n:04d}" for n in range(6)]
    seen = set()
    for n in range(6):
        m = metrics(sweep_dir, n)
        assert m["status"] == "completed" and m["trial"]["number"] == n
        params = m["trial"]["params"]
        assert set(params) == {
            "regularization.graph_dropout",
            "scheduler.learning_rate",
            "regularization",
        }
        overrides = (sweep_dir / names[n] / ".hydra" / "overrides.yaml").read_text()
        assert f"regularization.graph_dropout={params['regularization.graph_dropout']}" in overrides
        seen.add(params["regularization.graph_dropout"])
    assert len(seen) == 6  # six distinct points, six directories
    for png in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (sweep_dir / f"{png}.png").read_bytes().startswith(b"\x89PNG")
    md = (sweep_dir / "search_summary.md").read_text()
    assert "**6 of 6 trials ended:** 6 completed, 0 pruned, 0 failed." in md
    assert "budget=smoke (at most 2 epochs and 100 crystals per trial)" in md
    assert "pipeline check, not a result" in md
    summary = json.loads((sweep_dir / "search_summary.json").read_text())
    best = summary["best"]
    assert best["value"] == min(t["value"] for t in summary["trials"])
    assert best["command"].startswith("python -m fusion_tuner ")
    assert (sweep_dir / "best_experiment.yaml").read_text().startswith("# @package _global_")
    assert not (sweep_dir / "summary.md").exists()  # no misleading grid summary beside it
    assert not (sweep_dir / "sweep_plan.json").exists()


@pytest.mark.slow
def test_median_pruner_stops_the_diverging_learning_rate(tmp_path: Path) -> None:
    """Trial 0 is the baseline (learning rate 0.001, completes); then every trial that draws
    the diverging rate 10 is worse than the median of the completed trials at epoch 1."""
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler=random",
        "hydra.sweeper.baseline_runs=1",
        "hydra.sweeper.pruner.name=median",
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        LR_SPACE,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = trials(sweep_dir)
    assert rows[0]["baseline"] and rows[0]["state"] == "completed"
    lrs = [r["params"]["scheduler.learning_rate"] for r in rows]
    assert lrs[0] == 0.001 and 10.0 in lrs[1:], lrs  # the seed draws the bad rate
    for r, lr in zip(rows, lrs, strict=True):
        assert r["state"] == ("pruned" if lr == 10.0 else "completed"), rows
        m = metrics(sweep_dir, r["trial"])
        if lr == 10.0:
            assert m["status"] == "completed" and m["stop_reason"] == "pruned"
            assert m["epochs_run"] == 1 and m["trial"]["pruned_at_epoch"] == 1
            assert (sweep_dir / r["run_dir"] / "best_model.pt").is_file()
    states = study_states(sweep_dir)
    assert {states[r["trial"]] for r in rows if r["state"] == "pruned"} == {"PRUNED"}
    md = (sweep_dir / "search_summary.md").read_text()
    assert "pruned at epoch 1" in md and "0 failed" in md
    assert (sweep_dir / "intermediate_values.png").is_file()


@pytest.mark.slow
def test_a_killed_search_resumes_without_rerunning_or_duplicating_trials(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "search"
    args = ("hydra.sweeper.n_trials=6", "regularization.graph_dropout=interval(0.1,0.3)")
    proc = subprocess.Popen(
        search_cmd(sweep_dir, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    done = []
    while len(done) < 3:
        assert time.time() < deadline and proc.poll() is None, "3 trials never completed"
        done = [
            p
            for p in sweep_dir.glob("trial-*/metrics.json")
            if json.loads(p.read_text()).get("status") == "completed"
        ]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.parent.name: p.read_text() for p in done}
    killed_states = study_states(sweep_dir)
    assert list(killed_states.values()).count("COMPLETE") >= 2

    again = search(sweep_dir, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert study_states(sweep_dir) == dict.fromkeys(range(6), "COMPLETE")
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == [f"trial-{n:04d}" for n in range(6)]
    for name, text in before.items():  # completed trials were never run again
        assert (sweep_dir / name / "metrics.json").read_text() == text
    points = {
        metrics(sweep_dir, n)["trial"]["params"]["regularization.graph_dropout"] for n in range(6)
    }
    assert len(points) == 6


@pytest.mark.e2e
def test_a_new_study_in_an_old_sweep_dir_never_records_the_old_runs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "search"
    args = ("hydra.sweeper.n_trials=2", "regularization.graph_dropout=interval(0.1,0.3)")
    first = search(sweep_dir, *args, "scheduler.epochs=1")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    old = {n: (sweep_dir / f"trial-{n:04d}" / "metrics.json").read_bytes() for n in (0, 1)}
    (sweep_dir / "optuna-journal.log").unlink()  # the study is gone: a new one, other points
    again = search(sweep_dir, *args, "scheduler.epochs=1", "hydra.sweeper.seed=1")
    assert again.returncode != 0, "a search with no trial of its own completed must fail"
    assert "(0 completed, 0 pruned, 2 failed" in again.stdout
    assert study_states(sweep_dir) == {0: "FAIL", 1: "FAIL"}
    assert all(t.value is None for t in load_study(sweep_dir).trials)
    for row in trials(sweep_dir):
        assert row["state"] == "failed" and row["val_mae"] is None
        assert "its run was refused" in row["note"]
        assert "holds a completed run of a different config" in row["note"]
    for n, text in old.items():
        assert (sweep_dir / f"trial-{n:04d}" / "metrics.json").read_bytes() == text


@pytest.mark.slow
def test_two_trials_in_flight_through_the_local_launcher(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra/launcher=local",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "regularization.graph_dropout=interval(0.1,0.3)",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert study_states(sweep_dir) == {0: "COMPLETE", 1: "COMPLETE"}
    (a0, a1), (b0, b1) = log_span(sweep_dir / "trial-0000"), log_span(sweep_dir / "trial-0001")
    assert a0 < b1 and b0 < a1, "the two trials did not train at the same time"
    logs = sorted(p.parent.name for p in (sweep_dir / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, logs  # each trial in its own process (submitit job)


@pytest.mark.e2e
def test_a_mistake_in_the_search_is_refused_before_anything_runs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_jobs=0",
        "regularization=choice(baseline,huge)",
        "regularization.graph_dropout=interval(0.1,0.3)",
    )
    assert out.returncode == 2
    assert "hydra.sweeper.n_jobs=0: must be >= 1" in out.stderr
    assert "sampler=grid needs a finite set of values" in out.stderr
    assert not list(sweep_dir.glob("trial-*")) and not (sweep_dir / "optuna-journal.log").exists()
    out = search(sweep_dir, "regularization=choice(baseline,huge)")
    assert out.returncode == 2
    assert "regularization=huge" in out.stderr and "huge" in out.stderr


@pytest.mark.e2e
def test_a_subdir_with_the_job_number_names_the_trial_directories(tmp_path: Path) -> None:
    """Hydra's ``${hydra.job.num}`` in ``hydra.sweep.subdir``: the sweeper reads the command's
    overrides as typed (it used to resolve them and stop before any trial), and each trial
    trains in the directory the subdir names; the trial keys stay out of override_dirname."""
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra.sweeper.n_trials=2",
        "scheduler.learning_rate=choice(0.001,0.002)",
        "hydra.sweep.subdir=t_${hydra.job.num}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert study_states(sweep_dir) == {0: "COMPLETE", 1: "COMPLETE"}
    assert not list(sweep_dir.glob("trial-*"))
    rows = trials(sweep_dir)
    assert [r["run_dir"] for r in rows] == ["t_0", "t_1"]
    for n in (0, 1):
        m = json.loads((sweep_dir / f"t_{n}" / "metrics.json").read_text())
        assert m["status"] == "completed" and m["trial"]["number"] == n
        assert rows[n]["val_mae"] == pytest.approx(m["val"]["mae"])
        hydra_yaml = (sweep_dir / f"t_{n}" / ".hydra" / "hydra.yaml").read_text()
        dirname = next(ln for ln in hydra_yaml.splitlines() if "override_dirname:" in ln)
        assert "scheduler.learning_rate=" in dirname and "trial." not in dirname
    assert "No completed baseline run" not in (sweep_dir / "search_summary.md").read_text()


@pytest.mark.e2e
def test_a_trial_run_records_its_parameters_in_metrics_and_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run given trial.* (as the sweeper gives it) reports every epoch to the study, and keeps
    its sampled values in metrics.json and in the W&B run's config, named after its directory."""
    import optuna

    from fusion_tuner import compose_config, train
    from fusion_tuner.search.space import parse_space
    from fusion_tuner.search.study import PrunerSpec, open_study
    from tests.helpers import wandb_offline_records

    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(tmp_path, None, "minimize", PrunerSpec())
    space = parse_space({"regularization.graph_dropout": "interval(0.1, 0.3)"})
    trial = study.ask(space.distributions)
    cfg = compose_config(
        [
            *QUICK,
            *space.overrides(trial.params),
            "logger=wandb",
            "logger.mode=offline",
            f"trial.number={trial.number}",
            f"trial.study={study.study_name}",
            f"trial.storage={tmp_path / 'optuna-journal.log'}",
        ]
    )
    metrics = train(cfg, tmp_path / "trial-0000")
    value = cfg.regularization.graph_dropout
    assert metrics["trial"] == {
        "number": 0,
        "study": study.study_name,
        "params": {"regularization.graph_dropout": value},
    }
    assert sorted(study.trials[0].intermediate_values) == [1, 2]
    run = wandb_offline_records(tmp_path / "trial-0000")["run"][0]
    assert run.display_name == "trial-0000"
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["trial"]["params"] == {"regularization.graph_dropout": value}
    assert config["trial"]["number"] == 0


@pytest.mark.slow
def test_grid_search_trains_each_point_once_and_the_baseline_with_a_second_seed(
    tmp_path: Path,
) -> None:
    """The grid holds the baseline's point (batch 16, seed 42); baseline_runs=2 adds it with seed
    43 only, so the summary can state the seed noise; the grid ends without Optuna's stop()."""
    sweep_dir = tmp_path / "search"
    out = search(
        sweep_dir,
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.baseline_runs=2",
        "batch.batch_size=choice(16,32)",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = trials(sweep_dir)
    got = sorted((r["params"]["batch.batch_size"], r["seed"], r["baseline"]) for r in rows)
    assert got == [(16, 42, True), (16, 43, True), (32, 42, False)]
    assert json.loads((sweep_dir / "search.json").read_text())["n_trials"] == 3
    cmp = json.loads((sweep_dir / "search_summary.json").read_text())["against_baseline"]
    assert cmp["n"] == 2 and cmp["seed_sd"] > 0
