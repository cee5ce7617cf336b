"""The schema, group options, overrides and the cross-field rules of fusion_tuner.config."""

from __future__ import annotations

import pytest

from fusion_tuner import compose_config
from fusion_tuner.config import Config, parse_layers, validate
from fusion_tuner.errors import ConfigError

PLAN_BASELINE = {
    "regularization": {
        "graph_dropout": 0.15,
        "weight_decay": 0.0005,
        "cross_modal_dropout": 0.1,
        "fine_grained_dropout": 0.2,
        "middle_fusion_dropout": 0.1,
    },
    "fusion": {
        "use_middle_fusion": True,
        "middle_fusion_layers": [2],
        "middle_fusion_hidden_dim": 128,
        "middle_fusion_num_heads": 2,
        "use_contrastive_loss": False,
        "contrastive_loss_weight": 0.1,
        "contrastive_temperature": 0.1,
    },
    "scheduler": {
        "learning_rate": 0.001,
        "optimizer": "adamw",
        "scheduler": "onecycle",
        "warmup_steps": 2000,
        "epochs": 100,
        "n_early_stopping": 150,
    },
    "attention": {
        "cross_modal_num_heads": 4,
        "fine_grained_num_heads": 8,
        "cross_modal_hidden_dim": 256,
        "fine_grained_hidden_dim": 256,
        "use_cross_modal_attention": True,
    },
    "batch": {"batch_size": 128},
    "arch": {"alignn_layers": 4, "gcn_layers": 4, "hidden_features": 256, "embedding_features": 64},
}


def test_default_config_is_the_plan_baseline() -> None:
    cfg = compose_config()
    for group, values in PLAN_BASELINE.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, group), key) == value, f"{group}.{key}"
    assert cfg.dataset.source == "demo"
    # the dataclass defaults agree with conf/*/baseline.yaml
    assert validate(Config()).fusion.middle_fusion_layers == [2]


def test_group_option_and_dotted_override_compose() -> None:
    cfg = compose_config(["regularization=aggressive", "regularization.graph_dropout=0.3"])
    assert cfg.regularization.graph_dropout == 0.3
    assert cfg.regularization.weight_decay == 0.002  # from the option file
    assert cfg.regularization.middle_fusion_dropout == 0.1  # untouched baseline


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"2,3"', [2, 3]), ("[1,2,3]", [1, 2, 3]), ("2", [2]), ('"1, 2"', [1, 2])],
)
def test_middle_fusion_layers_accepts_plan_spelling_and_lists(value: str, expected: list) -> None:
    cfg = compose_config([f"fusion.middle_fusion_layers={value}"])
    assert cfg.fusion.middle_fusion_layers == expected
    assert all(type(i) is int for i in cfg.fusion.middle_fusion_layers)


def test_parse_layers_rejects_garbage() -> None:
    assert parse_layers("2,x") is None
    assert parse_layers(True) is None
    assert parse_layers([2, "3"]) is None


def test_misspelled_key_names_it_and_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(["regularization.graph_dropuot=0.3"])
    msg = str(err.value)
    assert "graph_dropuot" in msg
    assert "graph_dropout, weight_decay" in msg


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"regularization\.graph_dropout=abc"):
        compose_config(["regularization.graph_dropout=abc"])


def test_unknown_group_option_lists_choices() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(["regularization=aggresive"])
    assert "aggressive" in str(err.value) and "conservative" in str(err.value)


def test_fusion_layer_out_of_range_fails_before_data() -> None:
    with pytest.raises(
        ConfigError, match=r"fusion\.middle_fusion_layers=\[5\].*1\.\.arch\.alignn_layers=4"
    ):
        compose_config(['fusion.middle_fusion_layers="5"'])


def test_all_violations_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(
            [
                "batch.batch_size=0",
                "attention.cross_modal_num_heads=3",
                "dataset.train_fraction=0.9",
                "regularization.graph_dropout=1.0",
                "fusion.middle_fusion_num_heads=3",
                "scheduler.optimizer=lion",
            ]
        )
    problems = err.value.problems
    assert len(problems) == 6
    text = "\n".join(problems)
    for key in (
        "batch.batch_size",
        "attention.cross_modal_num_heads",
        "train_fraction",
        "regularization.graph_dropout",
        "fusion.middle_fusion_num_heads",
        "scheduler.optimizer",
    ):
        assert key in text


def test_switched_off_components_skip_their_rules() -> None:
    cfg = compose_config(
        ["attention.use_cross_modal_attention=false", "attention.cross_modal_num_heads=3"]
    )
    assert cfg.attention.cross_modal_num_heads == 3


def test_folder_source_needs_root() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.root"):
        compose_config(["dataset=folder"])


def test_missing_data_paths_are_config_problems(tmp_path) -> None:
    gone = tmp_path / "gone"
    table = tmp_path / "t.csv"
    table.write_text("cif,y\n")
    cases = [
        (["dataset=folder", f"dataset.root={gone}"], f"dataset.root={gone}: no such folder"),
        (["dataset=folder", f"dataset.root={table}"], f"dataset.root={table}: not a folder"),
        (["dataset=table"], "dataset.path must name the table file"),
        (["dataset=table", f"dataset.path={gone}.csv"], f"dataset.path={gone}.csv: no such file"),
        ([f"dataset.split_file={gone}.json"], f"dataset.split_file={gone}.json: no such file"),
        ([f"dataset.descriptions={gone}.csv"], f"dataset.descriptions={gone}.csv: no such file"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError) as err:
            compose_config(overrides)
        assert message in str(err.value), overrides
    cfg = compose_config(["dataset=table", f"dataset.path={table}", "dataset.target=y"])
    assert (cfg.dataset.source, cfg.dataset.structure_column, cfg.dataset.id_column) == (
        "table",
        None,
        None,
    )


def test_keys_of_an_unselected_source_name_the_source_to_select(tmp_path) -> None:
    cases = [
        ([f"dataset.root={tmp_path}"], "dataset.root", "dataset=folder", "dataset.source=demo"),
        ([f"dataset.path={tmp_path}/t.csv"], "dataset.path", "dataset=table", "demo"),
        (
            ["dataset=folder", f"dataset.root={tmp_path}", "dataset.id_column=mid"],
            "dataset.id_column=mid",
            "dataset=table",
            "dataset.source=folder",
        ),
        (
            ["dataset=table", f"dataset.path={tmp_path}", f"dataset.jarvis_dir={tmp_path}"],
            "dataset.jarvis_dir",
            "dataset=jarvis",
            "dataset.source=table",
        ),
        (["dataset.name=dft_2d"], "dataset.name=dft_2d", "dataset=jarvis", "demo"),
    ]
    for overrides, key, option, source in cases:
        with pytest.raises(ConfigError) as err:
            compose_config(overrides)
        text = str(err.value)
        assert key in text and f"add {option}" in text and source in text, text
    # option files and demo keys are fine with any source (their values are the defaults)
    compose_config(["dataset=folder", f"dataset.root={tmp_path}", "dataset.demo_size=60"])
    compose_config(["dataset=jarvis"])


def test_duplicates_policy_is_checked() -> None:
    assert compose_config().dataset.duplicates == "error"
    assert compose_config(["dataset.duplicates=first"]).dataset.duplicates == "first"
    with pytest.raises(ConfigError, match=r"dataset\.duplicates='keep' is not one of error, first"):
        compose_config(["dataset.duplicates=keep"])


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12"])
def test_device_accepts_a_numbered_cuda_device(device: str) -> None:
    assert compose_config([f"trainer.device={device}"]).trainer.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cuda1", "mps:0"])
def test_device_refuses_anything_else_naming_the_forms(device: str) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.device=.*auto, cpu, cuda, cuda:N"):
        compose_config([f"trainer.device={device}"])


def test_text_store_settings_are_checked() -> None:
    cfg = compose_config()
    assert (cfg.text.store, cfg.text.store_max_gb) == ("auto", 32.0)
    assert compose_config(["text.store_max_gb=null"]).text.store_max_gb is None
    with pytest.raises(ConfigError) as err:
        compose_config(["text.store=memory", "text.store_max_gb=-1"])
    text = "\n".join(err.value.problems)
    assert "text.store='memory' is not one of auto, off" in text
    assert "text.store_max_gb" in text
