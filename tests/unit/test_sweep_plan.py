"""The sweep plan: job expansion through Hydra's basic sweeper (a private API, pinned here so
that a Hydra upgrade that changes it fails loudly), the plan file, and the session file through
which the CLI learns which sweeps ran."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from fusion_tuner.sweeps.callback import SweepSummaryCallback, read_session, session_searches
from fusion_tuner.sweeps.plan import expand_jobs, job_experiment, read_plan, write_plan


def test_expand_jobs_is_the_cartesian_product_in_hydra_order() -> None:
    jobs = expand_jobs({"experiment": "baseline,e06_lower_lr"}, ["random_seed=1,2", "budget=quick"])
    assert jobs == [
        ["experiment=baseline", "random_seed=1", "budget=quick"],
        ["experiment=baseline", "random_seed=2", "budget=quick"],
        ["experiment=e06_lower_lr", "random_seed=1", "budget=quick"],
        ["experiment=e06_lower_lr", "random_seed=2", "budget=quick"],
    ]


def test_expand_jobs_keeps_plus_and_quoting_as_written() -> None:
    assert expand_jobs({}, ['+phase="1"', "batch.batch_size=32,64"]) == [
        ['+phase="1"', "batch.batch_size=32"],
        ['+phase="1"', "batch.batch_size=64"],
    ]


def test_job_experiment_defaults_to_the_baseline() -> None:
    assert job_experiment(["random_seed=1"]) == "baseline"
    assert job_experiment(["+experiment=e03_two_layer_fusion"]) == "e03_two_layer_fusion"


def test_plan_round_trip(tmp_path: Path) -> None:
    assert read_plan(tmp_path) is None
    write_plan(tmp_path, [["experiment=baseline"]])
    assert read_plan(tmp_path) == [["experiment=baseline"]]


def test_callback_records_the_sweep_in_the_session_file(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    session = tmp_path / "session.jsonl"
    sweep_dir = tmp_path / "sweep"
    hydra = {
        "sweep": {"dir": str(sweep_dir), "subdir": "${experiment_name}-seed${random_seed}"},
        "sweeper": {"params": {"experiment": "baseline,e01_conservative_regularization"}},
        "overrides": {"task": ["random_seed=1"]},
    }
    config = SimpleNamespace(hydra=OmegaConf.create(hydra))
    SweepSummaryCallback(0.05, str(session)).on_multirun_start(config)
    assert read_session(session) == [(sweep_dir, 0.05)]
    assert json.loads((sweep_dir / "sweep_plan.json").read_text())["jobs"] == [
        ["experiment=baseline", "random_seed=1"],
        ["experiment=e01_conservative_regularization", "random_seed=1"],
    ]
    # Hydra's basic sweeper adds no seeds: its one seed per experiment is a fixed design
    plan = json.loads((sweep_dir / "sweep_plan.json").read_text())
    assert plan["design"]["initial_seeds"] == plan["design"]["max_seeds"] == 1
    assert "runs the grid as given" in plan["fixed_because"] and plan["confirm_seeds"] == 3
    assert read_session(tmp_path / "absent.jsonl") == []


def test_a_search_that_stopped_before_recording_itself_gets_no_grid_summary(
    tmp_path: Path, capsys
) -> None:
    from omegaconf import OmegaConf

    from fusion_tuner.cli.train import _summarise_sweeps
    from fusion_tuner.search import SWEEPER_TARGET

    session = tmp_path / "session.jsonl"
    sweep_dir = tmp_path / "search"
    hydra = {"sweep": {"dir": str(sweep_dir)}, "sweeper": {"_target_": SWEEPER_TARGET}}
    SweepSummaryCallback(0.05, str(session)).on_multirun_start(
        SimpleNamespace(hydra=OmegaConf.create(hydra))
    )
    assert session_searches(session) == {sweep_dir}
    assert read_session(session) == [(sweep_dir, 0.05)]
    # the sweeper failed before search.json: no "0 runs" grid summary, and a failure
    assert _summarise_sweeps(session) is False
    assert sorted(p.name for p in sweep_dir.iterdir()) == []
    assert "stopped before its first trial" in capsys.readouterr().err


def phase_jobs(phase: str, *task: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper runs for ``+phase=<phase> -m <task...>``."""
    from hydra import compose, initialize_config_dir

    from fusion_tuner.compose import normalize_overrides
    from fusion_tuner.config import register_configs
    from fusion_tuner.paths import conf_dir
    from fusion_tuner.sweeps.plan import plan_jobs

    register_configs()
    overrides = normalize_overrides([f"+phase={phase}", *task])
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    return plan_jobs(cfg.hydra)


def test_phases_run_three_paired_seeds_and_one_seed_replaces_them() -> None:
    jobs = phase_jobs("1", "budget=quick")
    assert len(jobs) == 6 * 3
    seeds: dict[str, list[str]] = {}
    for job in jobs:
        seeds.setdefault(job_experiment(job), []).append(
            next(o for o in job if o.startswith("random_seed="))
        )
    assert len(seeds) == 6
    assert all(s == ["random_seed=1", "random_seed=2", "random_seed=3"] for s in seeds.values())
    smoke = phase_jobs("2", "random_seed=42")
    assert len(smoke) == 5 and all("random_seed=42" in job for job in smoke)
    for phase in ("3", "4"):
        assert {o for job in phase_jobs(phase) for o in job if "seed" in o} == {
            "random_seed=1",
            "random_seed=2",
            "random_seed=3",
        }
