"""Phases that chain: what an experiment sets, how a base sweep's winner is applied beneath each
new experiment, what is recorded, and the errors a user can cause."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from fusion_tuner import compose_config
from fusion_tuner.checkpoint import config_to_dict
from fusion_tuner.config import flatten
from fusion_tuner.errors import ConfigError
from fusion_tuner.paths import conf_dir
from fusion_tuner.sweeps.chain import (
    as_overrides,
    experiment_settings,
    owned_keys,
    read_next_base,
)
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.sweeps import fake_run, fixed_design

EXPERIMENTS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
WINNER = {  # tuned_regularization's values, as a phase-1 summary.json records them
    "regularization.graph_dropout": 0.25,
    "regularization.weight_decay": 0.001,
    "scheduler.learning_rate": 0.0005,
    "scheduler.scheduler": "lambda",
    "scheduler.epochs": 300,
}


@functools.cache
def flat(*overrides: str) -> dict:
    return flatten(asdict(compose_config(list(overrides), check=False)))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_settings_are_exactly_what_hydra_composes(name: str) -> None:
    """Every key an experiment changes is among its settings, with Hydra's value."""
    baseline, composed = flat(), flat(f"experiment={name}")
    settings = experiment_settings(name)
    for key, value in settings.items():
        got = composed[key]
        # "2,3" is parsed into [2, 3] by the schema
        assert got == value or got == [int(v) for v in str(value).split(",")], key
    changed = {k for k in composed if composed[k] != baseline[k]} - {"experiment_name"}
    assert changed <= set(settings), f"{name} changes keys it does not list: {changed}"


def write_base(sweep: Path, winner: str | None, overrides: dict) -> Path:
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "summary.json").write_text(
        json.dumps(
            {
                "next_base": {
                    "sweep": str(sweep),
                    "winner": winner,
                    "overrides": overrides,
                    "note": "hand-written for the test",
                }
            }
        )
    )
    return sweep


def test_a_new_phase_starts_from_the_winner_and_applies_its_experiment_on_top(
    tmp_path: Path,
) -> None:
    base = write_base(tmp_path / "phase1", "tuned_regularization", WINNER)
    new_baseline = compose_config([f"base_sweep={base}", "experiment=baseline"])
    for key, value in WINNER.items():
        assert flatten(asdict(new_baseline))[key] == value
    assert new_baseline.base.sweep == str(base.resolve())
    assert new_baseline.base.winner == "tuned_regularization"
    assert new_baseline.base.overrides == WINNER and new_baseline.base.superseded == []
    # what the checkpoint and the W&B config get (training/run.py: config_to_dict(cfg))
    assert config_to_dict(new_baseline)["base"]["winner"] == "tuned_regularization"
    # a phase-2 experiment: its fusion settings on top of the winner's
    e03 = compose_config([f"base_sweep={base}", "experiment=e03_two_layer_fusion"])
    assert e03.fusion.middle_fusion_layers == [2, 3] and e03.fusion.middle_fusion_hidden_dim == 256
    assert e03.scheduler.learning_rate == 0.0005 and e03.regularization.graph_dropout == 0.25
    # an experiment that sets a winner key itself wins there; the winner's other keys stay
    e07 = compose_config([f"base_sweep={base}", "experiment=e07_conservative_lr"])
    assert (e07.scheduler.learning_rate, e07.scheduler.scheduler) == (0.0003, "cosine")
    assert e07.scheduler.epochs == 300 and e07.regularization.graph_dropout == 0.25
    assert set(e07.base.superseded) == {"scheduler.learning_rate", "scheduler.scheduler"}


def test_the_command_line_wins_over_the_base(tmp_path: Path) -> None:
    base = write_base(tmp_path / "phase1", "tuned_regularization", WINNER)
    cfg = compose_config(
        [f"base_sweep={base}", "scheduler.epochs=20", "regularization=conservative", "budget=quick"]
    )
    assert cfg.scheduler.epochs == 20 and cfg.scheduler.learning_rate == 0.0005
    assert cfg.regularization.graph_dropout == 0.2  # conf/regularization/conservative.yaml
    assert set(cfg.base.superseded) == {
        "scheduler.epochs",
        "regularization.graph_dropout",
        "regularization.weight_decay",
    }


def test_no_winner_keeps_the_previous_start(tmp_path: Path) -> None:
    base = write_base(tmp_path / "phase2", None, {"scheduler.learning_rate": 0.0005})
    cfg = compose_config([f"base_sweep={base}"])
    assert cfg.scheduler.learning_rate == 0.0005 and cfg.base.winner is None


def test_owned_keys_of_a_job() -> None:
    owned = owned_keys(
        ["experiment=e06_lower_lr", "random_seed=2", "budget=quick", "batch.batch_size=32"]
    )
    assert {"scheduler.learning_rate", "scheduler.epochs", "budget", "batch.batch_size"} <= set(
        owned
    )
    assert "random_seed" not in owned


def test_as_overrides_round_trips_through_compose() -> None:
    values = {"fusion.middle_fusion_layers": "2,3", "scheduler.scheduler": "lambda", "x.y": None}
    assert as_overrides(values) == [
        "fusion.middle_fusion_layers='2,3'",
        "scheduler.scheduler=lambda",
        "x.y=null",
    ]
    cfg = compose_config(as_overrides({"fusion.middle_fusion_layers": "2,3"}))
    assert cfg.fusion.middle_fusion_layers == [2, 3]


def test_chain_errors_name_the_directory_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"base_sweep=.*nope: no such directory"):
        compose_config([f"base_sweep={tmp_path / 'nope'}"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ConfigError, match=r"summary.json not found.*python -m fusion_tuner.summary"
    ):
        compose_config([f"base_sweep={tmp_path / 'empty'}"])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no readable next_base"):
        compose_config([f"base_sweep={tmp_path / 'old'}"])
    bad = write_base(tmp_path / "bad", "x", {"regularization.no_such_key": 1})
    with pytest.raises(ConfigError, match=r"sets regularization\.no_such_key"):
        compose_config([f"base_sweep={bad}"])


def test_a_chained_sweeps_summary_hands_on_the_cumulative_winner(tmp_path: Path) -> None:
    """Phase 1 (written by hand) -> phase 2 runs that carry its base -> phase 2's summary."""
    phase1 = write_base(tmp_path / "phase1", "e06_lower_lr", {"scheduler.learning_rate": 0.0005})
    record = {
        "sweep": str(phase1),
        "winner": "e06_lower_lr",
        "overrides": {"scheduler.learning_rate": 0.0005},
        "superseded": [],
    }
    phase2 = tmp_path / "phase2"
    fixed_design(phase2, 3)
    for seed, (b, e) in enumerate([(1.0, 0.90), (1.02, 0.91), (0.98, 0.92)], start=1):
        common = {"base": record, "scheduler": {"learning_rate": 0.0005}}
        fake_run(phase2, "baseline", seed, b, config=common | {"fusion": {"hidden": 128}})
        fake_run(
            phase2, "e03_two_layer_fusion", seed, e, config=common | {"fusion": {"hidden": 256}}
        )
    s = write_summary(phase2)
    assert s.base == {k: record[k] for k in ("sweep", "winner", "overrides")}
    data = json.loads((phase2 / "summary.json").read_text())
    assert data["base"]["winner"] == "e06_lower_lr"
    assert data["next_base"]["winner"] == "e03_two_layer_fusion"
    assert data["next_base"]["overrides"] == {
        "scheduler.learning_rate": 0.0005,
        "fusion.hidden": 256,
    }
    md = (phase2 / "summary.md").read_text()
    assert "This sweep's baseline is the winner **e06_lower_lr**" in md
    assert "scheduler.learning_rate=0.0005" in md
    nb = read_next_base(phase2)
    assert nb.winner == "e03_two_layer_fusion" and nb.sweep == str(phase2.resolve())
