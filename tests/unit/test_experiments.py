"""Every experiment and phase file composes and resolves to exactly the plan's values."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from fusion_tuner import compose_config
from fusion_tuner.paths import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
PHASES = sorted(p.stem for p in (CONF_DIR / "phase").glob("*.yaml"))

# The tuning plan's tables, as (group.key: value) changes from the baseline.
PLAN = {
    "baseline": {},
    "e01_conservative_regularization": {
        "regularization.graph_dropout": 0.2,
        "regularization.weight_decay": 0.001,
        "regularization.cross_modal_dropout": 0.15,
        "regularization.fine_grained_dropout": 0.25,
    },
    "e02_aggressive_regularization": {
        "regularization.graph_dropout": 0.25,
        "regularization.weight_decay": 0.002,
        "regularization.cross_modal_dropout": 0.2,
        "regularization.fine_grained_dropout": 0.3,
    },
    "e03_two_layer_fusion": {
        "fusion.middle_fusion_layers": [2, 3],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
    },
    "e04_early_fusion": {
        "fusion.middle_fusion_layers": [1, 2],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
    },
    "e05_three_layer_fusion": {
        "fusion.middle_fusion_layers": [1, 2, 3],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
    },
    "e06_lower_lr": {
        "scheduler.learning_rate": 0.0005,
        "scheduler.scheduler": "lambda",
        "scheduler.n_early_stopping": 100,
        "scheduler.epochs": 300,
    },
    "e07_conservative_lr": {
        "scheduler.learning_rate": 0.0003,
        "scheduler.scheduler": "cosine",
        "scheduler.n_early_stopping": 100,
    },
    "e08_weaker_cross_attention": {"attention.cross_modal_num_heads": 2},
    "e09_no_cross_attention": {"attention.use_cross_modal_attention": False},
    "e10_batch_64": {"batch.batch_size": 64},
    "e11_batch_32": {"batch.batch_size": 32},
    "arch_hidden_128": {"arch.hidden_features": 128},
    "arch_shallow": {"arch.alignn_layers": 3, "arch.gcn_layers": 3},
    "tuned_regularization": {
        "regularization.graph_dropout": 0.25,
        "regularization.weight_decay": 0.001,
        "regularization.cross_modal_dropout": 0.15,
        "regularization.fine_grained_dropout": 0.25,
        "regularization.middle_fusion_dropout": 0.15,
        "scheduler.learning_rate": 0.0005,
        "scheduler.scheduler": "lambda",
        "scheduler.n_early_stopping": 100,
        "scheduler.epochs": 300,
    },
    "tuned_enhanced_fusion": {
        "fusion.middle_fusion_layers": [2, 3],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
        "regularization.middle_fusion_dropout": 0.15,
        "regularization.graph_dropout": 0.2,
        "regularization.weight_decay": 0.001,
        "scheduler.learning_rate": 0.0005,
        "scheduler.n_early_stopping": 100,
        "scheduler.epochs": 300,
    },
    "tuned_weak_cross_attention": {
        "fusion.middle_fusion_layers": [2, 3],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
        "attention.cross_modal_num_heads": 2,
        "regularization.graph_dropout": 0.2,
        "regularization.weight_decay": 0.001,
        "scheduler.learning_rate": 0.0005,
    },
    "tuned_aggressive": {
        "fusion.middle_fusion_layers": [1, 2, 3],
        "fusion.middle_fusion_hidden_dim": 256,
        "fusion.middle_fusion_num_heads": 4,
        "regularization.graph_dropout": 0.3,
        "regularization.weight_decay": 0.002,
        "regularization.cross_modal_dropout": 0.2,
        "regularization.fine_grained_dropout": 0.3,
        "scheduler.learning_rate": 0.0003,
        "batch.batch_size": 64,
    },
    # not a plan experiment: upstream ALIGNN's recipe (checked against upstream in
    # tests/unit/test_alignn_recipe.py)
    "alignn_reference": {
        "text.enabled": False,
        "batch.batch_size": 64,
        "scheduler.epochs": 300,
        "scheduler.pct_start": 0.3,
        "scheduler.cycle_momentum": True,
        "scheduler.n_early_stopping": 300,
        "regularization.graph_dropout": 0.0,
        "regularization.weight_decay": 1e-05,
        "arch.readout": "linear",
        "trainer.target_scale": "raw",
        "trainer.grad_clip_norm": None,
    },
}

PHASE_GRIDS = {
    "1": [
        "baseline",
        "e01_conservative_regularization",
        "e02_aggressive_regularization",
        "e06_lower_lr",
        "e07_conservative_lr",
        "tuned_regularization",
    ],
    "2": [
        "baseline",
        "e03_two_layer_fusion",
        "e04_early_fusion",
        "e05_three_layer_fusion",
        "tuned_enhanced_fusion",
    ],
    "3": [
        "baseline",
        "e08_weaker_cross_attention",
        "e09_no_cross_attention",
        "tuned_weak_cross_attention",
    ],
    "4": [
        "baseline",
        "e10_batch_64",
        "e11_batch_32",
        "arch_hidden_128",
        "arch_shallow",
        "tuned_aggressive",
    ],
}


def flat(cfg) -> dict:
    out = {}
    for group, values in asdict(cfg).items():
        if isinstance(values, dict):
            out.update({f"{group}.{k}": v for k, v in values.items()})
    return out


def test_every_experiment_file_is_in_the_plan_table() -> None:
    assert set(EXPERIMENTS) == set(PLAN), "an experiment file without plan values, or vice versa"
    assert len([e for e in EXPERIMENTS if e.startswith("e")]) == 11


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_changes_exactly_the_plan_values(name: str) -> None:
    base, exp = flat(compose_config()), flat(compose_config([f"experiment={name}"]))
    changed = {k: v for k, v in exp.items() if base[k] != v}
    assert changed == PLAN[name]
    assert compose_config([f"experiment={name}"]).experiment_name == name


@pytest.mark.parametrize("phase", PHASES)
def test_phase_grid_is_the_plan_grid_and_composes(phase: str) -> None:
    raw = yaml.safe_load((CONF_DIR / "phase" / f"{phase}.yaml").read_text())
    grid = raw["hydra"]["sweeper"]["params"]["experiment"].split(",")
    assert grid == PHASE_GRIDS[phase]
    assert raw["hydra"]["sweeper"]["params"]["random_seed"] == "1,2,3"  # paired seeds
    assert f"outputs/multirun/phase{phase}/" in raw["hydra"]["sweep"]["dir"]
    for name in grid:  # every grid point composes with the phase and validates
        cfg = compose_config([f"+phase={phase}", f"experiment={name}"])
        assert cfg.experiment_name == name


def test_phase_composes_with_other_overrides() -> None:
    cfg = compose_config(
        ["+phase=2", "experiment=e03_two_layer_fusion", "dataset=jarvis", "random_seed=3"]
    )
    assert (cfg.dataset.source, cfg.random_seed, cfg.fusion.middle_fusion_layers) == (
        "jarvis",
        3,
        [2, 3],
    )
    assert len(PHASES) == 4 and Path(CONF_DIR / "phase" / "1.yaml").is_file()
