"""budget.width_scale: every model width scaled (to a multiple of its heads), so that an
experiment's width keeps its ratio to the baseline; budget=cpu composes as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_tuner.config import model_width
from fusion_tuner.errors import ConfigError
from tests.conftest import compose


def test_model_width_scales_and_rounds_to_a_multiple_of_the_heads() -> None:
    cfg = compose("budget=cpu")
    assert cfg.budget.width_scale == 0.25
    assert model_width(cfg, 256) == 64 and model_width(cfg, 128) == 32
    assert model_width(cfg, 100, heads=8) == 24  # 25 -> the nearest multiple of 8
    assert model_width(cfg, 8, heads=8) == 8  # never below one width per head
    assert model_width(compose(), 256) == 256  # unset: as configured


def test_budget_cpu_builds_a_quarter_width_model_and_keeps_width_experiments_apart(
    tmp_path,
) -> None:
    from fusion_tuner import build_datamodule
    from fusion_tuner.models.builders import build_model

    data = ("dataset.demo_size=40", "text.max_length=48")
    info = build_datamodule(compose(*data, cache=tmp_path)).info
    widths = {}
    for experiment in ("baseline", "arch_hidden_128"):
        cfg = compose(*data, "budget=cpu", f"experiment={experiment}", cache=tmp_path)
        model = build_model(cfg, info)
        widths[experiment] = model.alignn_layers[0].atom_update.edge_gate.in_features  # hidden
        # the plan's layers, heads and batches stay as configured
        assert len(model.alignn_layers) == cfg.arch.alignn_layers == 4
        assert cfg.batch.batch_size == 128 and cfg.budget.max_structures == 1000
    assert widths == {"baseline": 64, "arch_hidden_128": 32}


@pytest.mark.parametrize("scale", ["0", "1.5", "-0.25"])
def test_width_scale_outside_0_1_is_refused_naming_the_key(scale: str) -> None:
    with pytest.raises(ConfigError, match=r"budget.width_scale=.* must be in \(0, 1\]"):
        compose(f"budget.width_scale={scale}")


PHASE_EXPERIMENTS = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "conf" / "experiment").glob("*.yaml")
    if p.stem != "alignn_reference"  # graph-only upstream recipe, not a phase arm
)


@pytest.mark.parametrize("experiment", PHASE_EXPERIMENTS)
def test_every_plan_experiment_composes_under_budget_cpu_and_stays_distinct(
    experiment: str,
) -> None:
    # the README's `+phase=N -m dataset=perov5_sample budget=cpu`: each arm keeps what makes it
    # an experiment (widths scaled alike, layers, heads, batches and the rest untouched)
    plain = compose("dataset=perov5_sample", f"experiment={experiment}")
    cpu = compose("dataset=perov5_sample", "budget=cpu", f"experiment={experiment}")
    for section in ("arch", "batch", "attention", "fusion", "regularization", "scheduler"):
        a, b = getattr(plain, section), getattr(cpu, section)
        assert a == b, (section, experiment)  # the budget changes no knob ...
    # ... only the widths the model is built with
    assert model_width(cpu, plain.arch.hidden_features) == plain.arch.hidden_features // 4
