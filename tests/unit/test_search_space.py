"""The search space: Hydra's sweep syntax as Optuna distributions, values back as overrides, the
grid, the baseline's point, and every conf/search/*.yaml file against the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fusion_tuner.errors import ConfigError
from fusion_tuner.search.space import base_values, parse_space, render_value

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_each_sweep_form_becomes_its_distribution() -> None:
    space = parse_space(
        {
            "regularization.graph_dropout": "interval(0.15, 0.3)",
            "scheduler.learning_rate": "tag(log, interval(1e-4, 1e-2))",
            "arch.alignn_layers": "int(interval(2, 4))",
            "scheduler.warmup_steps": "range(0, 2001, 500)",
            "regularization.weight_decay": "range(0.1, 0.3, 0.05)",
            "batch.batch_size": "choice(32, 64)",
            "regularization": "baseline,aggressive",
            "scheduler.scheduler": "cosine",
        }
    )
    d = space.distributions
    assert d["regularization.graph_dropout"] == FloatDistribution(0.15, 0.3)
    assert d["scheduler.learning_rate"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert d["arch.alignn_layers"] == IntDistribution(2, 4)
    # range stops before its end, as Hydra's and Python's do
    assert d["scheduler.warmup_steps"] == IntDistribution(0, 2000, step=500)
    assert d["regularization.weight_decay"] == FloatDistribution(0.1, 0.25, step=0.05)
    assert d["batch.batch_size"] == CategoricalDistribution([32, 64])
    assert d["regularization"] == CategoricalDistribution(["baseline", "aggressive"])
    assert space.fixed == ["scheduler.scheduler=cosine"]


def test_the_command_line_replaces_a_params_entry_and_adds_fixed_overrides() -> None:
    space = parse_space(
        {"batch.batch_size": "choice(32, 64)", "regularization.graph_dropout": "interval(0.1,0.2)"},
        ["batch.batch_size=16", "budget=quick", "+regularization.graph_dropout=interval(0.2,0.3)"],
    )
    assert list(space.dimensions) == ["regularization.graph_dropout"]
    assert space.dimensions["regularization.graph_dropout"].key == "+regularization.graph_dropout"
    assert space.fixed == ["batch.batch_size=16", "budget=quick"]


def test_overrides_round_floats_and_quote_what_hydra_would_misread() -> None:
    space = parse_space(
        {
            "regularization.graph_dropout": "interval(0.1, 0.3)",
            "fusion.middle_fusion_layers": "choice('2', '2,3')",
            "logger.name": "choice('true', x)",
        },
        ["budget=quick"],
    )
    overrides = space.overrides(
        {
            "regularization.graph_dropout": 0.23475424429952796,
            "fusion.middle_fusion_layers": "2,3",
            "logger.name": "true",
        }
    )
    assert overrides == [
        "budget=quick",
        "regularization.graph_dropout=0.234754",
        "fusion.middle_fusion_layers='2,3'",
        "logger.name='true'",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (None, "null"),
        (3, "3"),
        (1e-05, "1e-05"),
        ("cosine", "cosine"),
        ("tier1/2026-11-30_07-00-00", "tier1/2026-11-30_07-00-00"),
        ("1,2,3", "'1,2,3'"),
        ("it's", "'it\\'s'"),
        ("10", "'10'"),
    ],
)
def test_render_value_parses_back_to_the_same_value(value: object, text: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert render_value(value) == text
    assert OverridesParser.create().parse_override(f"k={text}").value() == value


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("glob(*)", "cannot be searched"),
        ("tag(log, interval(0, 1))", "positive start"),
        ("interval(0.3, 0.1)", "start < end"),
        ("tag(log, choice(1, 2))", r"interval\(\.\.\.\) only"),
        ("shuffle(choice(1, 2))", "shuffle"),
        ("choice(1, 1)", "twice"),
    ],
)
def test_what_optuna_cannot_sample_is_refused_naming_the_key(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_space({"regularization.graph_dropout": entry})
    assert "regularization.graph_dropout=" in str(err.value)


def test_a_space_without_a_dimension_is_refused() -> None:
    with pytest.raises(ConfigError, match="no dimension"):
        parse_space({}, ["budget=quick"])


def test_grid_lists_values_and_refuses_intervals() -> None:
    space = parse_space({"a": "choice(x, y)", "b": "range(1, 4)", "c": "range(0.1, 0.3, 0.1)"})
    assert space.grid() == {"a": ["x", "y"], "b": [1, 2, 3], "c": [0.1, 0.2]}
    with pytest.raises(ConfigError, match="sampler=grid needs a finite set"):
        parse_space({"a": "interval(0, 1)"}).grid()


def _hydra_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    from fusion_tuner.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_base_values_are_the_config_without_the_search() -> None:
    cfg = _hydra_config("regularization=aggressive")
    space = parse_space(
        {"regularization": "choice(baseline, aggressive)", "batch.batch_size": "choice(64, 128)"}
    )
    assert base_values(cfg, space) == {"regularization": "aggressive", "batch.batch_size": 128}
    with pytest.raises(ConfigError, match="not among the choices"):
        base_values(cfg, parse_space({"batch.batch_size": "choice(32, 64)"}))


SEARCHES = sorted(p.stem for p in (CONF / "search").glob("*.yaml"))


def test_every_plan_tier_has_a_search_file() -> None:
    assert SEARCHES == ["tier1", "tier2", "tier3", "tier4", "tier5", "tier6", "top"]


@pytest.mark.parametrize("name", SEARCHES)
def test_search_file_selects_the_sweeper_and_its_space_holds_the_baseline(name: str) -> None:
    """Each search parses, every value at both ends composes and passes the config's rules, and
    the baseline is a point of the space (baseline trials and the grid's baseline need it)."""
    from fusion_tuner.search import is_search_config
    from hydra_plugins.fusion_tuner_optuna.sweeper import _probes

    cfg = _hydra_config(f"+search={name}")
    assert is_search_config(cfg.hydra) and cfg.hydra.mode.name == "MULTIRUN"
    assert str(cfg.hydra.sweep.dir).startswith(f"outputs/search/{name}/")
    space = parse_space(dict(cfg.hydra.sweeper.params))
    base = base_values(cfg, space)
    for dim in space.dimensions.values():
        dist = dim.distribution
        value = base[dim.name]
        inside = (
            value in dist.choices
            if isinstance(dist, CategoricalDistribution)
            else dist.low <= value <= dist.high
        )
        assert inside, f"{name}: the baseline's {dim.name}={value} is outside {dist}"
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fusion_tuner.config import validate

    if name == "top":  # the union of tiers 1-3: each of its ranges is probed there
        return
    probes = _probes(space)
    assert len(probes) >= 2 * len(space.dimensions)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        for _, overrides in probes:
            validate(OmegaConf.to_object(compose(config_name="config", overrides=overrides)))


def _effective(cfg) -> dict:
    """The configuration's keys that act: text keys of a graph-only run and the keys of an
    attention that is switched off are dropped."""
    from dataclasses import asdict

    from fusion_tuner.config import flatten, inert_text_keys

    flat = flatten(asdict(cfg))
    off = list(inert_text_keys(cfg))
    if not cfg.attention.use_cross_modal_attention:
        off += ["attention.cross_modal_num_heads", "attention.cross_modal_hidden_dim"]
        off += ["regularization.cross_modal_dropout"]
    if not cfg.attention.use_fine_grained_attention:
        off += ["attention.fine_grained_num_heads", "attention.fine_grained_hidden_dim"]
        off += ["regularization.fine_grained_dropout"]
    return {k: v for k, v in flat.items() if k not in off}


GRIDS = [n for n in SEARCHES if "sampler: grid" in (CONF / "search" / f"{n}.yaml").read_text()]


def test_the_grid_searches_are_tiers_4_to_6() -> None:
    assert GRIDS == ["tier4", "tier5", "tier6"]


@pytest.mark.parametrize("name", GRIDS)
def test_no_two_grid_points_train_the_same_model(name: str) -> None:
    """A grid point whose only difference is a key without effect (the heads of a switched-off
    attention) would train the same model again under another name (tier 4 did: 12 points,
    4 of them repeats)."""
    import itertools

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    hydra_cfg = _hydra_config(f"+search={name}").hydra
    assert hydra_cfg.sweeper.sampler == "grid"
    space = parse_space(dict(hydra_cfg.sweeper.params))
    grid = space.grid()
    seen: dict[str, str] = {}
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        for values in itertools.product(*grid.values()):
            overrides = [space.dimensions[k].override(v) for k, v in zip(grid, values, strict=True)]
            cfg = OmegaConf.to_object(
                compose(config_name="config", overrides=[*space.fixed, *overrides])
            )
            key = repr(sorted(_effective(cfg).items()))
            point = " ".join(overrides)
            assert key not in seen, f"{name}: {point} trains the same model as {seen[key]}"
            seen[key] = point
    assert len(seen) == hydra_cfg.sweeper.n_trials, f"{name}: n_trials is not the grid's size"


def test_top_searches_the_ranges_of_tiers_1_to_3_together() -> None:
    tiers = {}
    for tier in ("tier1", "tier2", "tier3"):
        tiers |= parse_space(
            dict(_hydra_config(f"+search={tier}").hydra.sweeper.params)
        ).distributions
    top = parse_space(dict(_hydra_config("+search=top").hydra.sweeper.params)).distributions
    assert {k: tiers[k] for k in top} == top
    assert set(tiers) - set(top) == {"scheduler.warmup_steps"}


def test_help_lists_each_search_with_the_keys_it_searches() -> None:
    from fusion_tuner.cli.help import help_text

    text = help_text(CONF)
    assert "search: Optuna searches over the plan's tiers (-m +search=tier1 runs one)" in text
    assert "searches batch.batch_size\n" in text
    assert "search.hydra" not in text
