"""Fine-tuning from a run (``model.init_from``): what is loaded, skipped and new, the
tokenizer it reuses, the normaliser of the new split, freezing, and the record in
``metrics.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from fusion_tuner.compose import compose_config
from fusion_tuner.errors import ConfigError, RunError
from fusion_tuner.rundir import locate
from fusion_tuner.training.finetune import GRAPH_ENCODER
from fusion_tuner.training.trainer import Trainer
from tests.helpers.cli import TINY, run_cli
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


def tiny(*overrides: str):
    return compose_config([*TINY, *overrides])


def graph_and_rest(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    graph = {k: v for k, v in state.items() if k.startswith(GRAPH_ENCODER)}
    return graph, {k: v for k, v in state.items() if k not in graph}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="session")
def source(trained_run: Path) -> Path:
    """The session's TINY run (read only)."""
    return trained_run


def test_every_matching_tensor_is_loaded_with_the_source_tokenizer(source, tmp_path) -> None:
    src = locate(source)
    trainer = Trainer.from_config(
        tiny("dataset.demo_size=80", f"model.init_from={source}"), tmp_path / "ft"
    )
    state = trainer.model.state_dict()
    assert trainer.init["loaded"] == len(state) - 2 and trainer.init["new"] == 0
    assert trainer.init["skipped"] == trainer.init["skipped_normalizer"] == 2
    assert trainer.init["skipped_shape"] == [] and trainer.init["unused"] == 0
    for name, tensor in state.items():
        if name not in ("target_mean", "target_std"):
            assert torch.equal(tensor, src.checkpoint["model_state"][name]), name
    # the normaliser is the new training split's, not the source's
    y = trainer.dm.datasets["train"].targets
    assert float(trainer.model.target_mean) == pytest.approx(float(y.mean()))
    assert float(trainer.model.target_mean) != pytest.approx(src.checkpoint["normalizer"]["mean"])
    # the source's tokenizer (its own, on 80 crystals, would differ), so token ids keep meaning
    assert trainer.dm.info.tokenizer_id == src.data_info["tokenizer_id"]
    fresh = Trainer.from_config(tiny("dataset.demo_size=80"), tmp_path / "fresh")
    assert fresh.dm.info.tokenizer_id != src.data_info["tokenizer_id"] and fresh.init is None


def test_graph_encoder_scope_and_shape_mismatches(source, tmp_path) -> None:
    src_state = locate(source).checkpoint["model_state"]
    graph_only = Trainer.from_config(
        tiny(f"model.init_from={source}", "model.init_scope=graph_encoder"), tmp_path / "g"
    )
    state = graph_only.model.state_dict()
    src_graph, _ = graph_and_rest(src_state)
    graph, rest = graph_and_rest(state)
    assert graph_only.init["loaded"] == len(graph) == len(src_graph)
    assert graph_only.init["skipped_scope"] == len(rest) - 2
    assert same(graph, src_graph)
    assert not same(rest, {k: src_state[k] for k in rest})  # the rest is freshly initialised
    wider = Trainer.from_config(
        tiny(f"model.init_from={source}", "attention.cross_modal_hidden_dim=16"), tmp_path / "w"
    )
    shape = wider.init["skipped_shape"]
    assert shape and all(n.startswith(("cross_modal.", "head.")) for n in shape)
    assert wider.init["loaded"] + wider.init["skipped"] + wider.init["new"] == len(
        wider.model.state_dict()
    )


def test_freezing_keeps_the_graph_encoder_then_releases_it(source, tmp_path) -> None:
    src_graph, src_rest = graph_and_rest(locate(source).checkpoint["model_state"])
    trainer = Trainer.from_config(
        tiny(f"model.init_from={source}", "model.freeze_graph_epochs=1", "scheduler.epochs=2"),
        tmp_path / "freeze",
    )
    graph_ids = {id(p) for n, p in trainer.model.named_parameters() if n.startswith(GRAPH_ENCODER)}
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert graph_ids <= in_optimizer  # there from the start, so unfreezing needs no new one
    trainer.max_epochs = 1
    trainer.fit()
    graph, rest = graph_and_rest(trainer.model.state_dict())
    assert same(graph, src_graph)  # frozen during epoch 1
    assert not same(rest, {k: src_rest[k] for k in rest})  # while the rest trained
    trainer.max_epochs = 2
    trainer.fit()
    graph, _ = graph_and_rest(trainer.model.state_dict())
    assert not same(graph, src_graph)  # unfrozen in epoch 2


@pytest.mark.e2e
def test_cli_records_init_and_freezes_for_the_whole_run(source, tmp_path) -> None:
    run = tmp_path / "whole"
    run_cli(run, f"model.init_from={source / 'best_model.pt'}", "model.freeze_graph_epochs=-1")
    metrics = json.loads((run / "metrics.json").read_text())
    init = metrics["init"]
    assert init["from"] == str(source / "best_model.pt") and init["scope"] == "all"
    assert init["freeze_graph_epochs"] == -1 and init["skipped_normalizer"] == 2
    src_graph, _ = graph_and_rest(locate(source).checkpoint["model_state"])
    graph, _ = graph_and_rest(torch.load(run / "best_model.pt", weights_only=True)["model_state"])
    assert same(graph, src_graph)
    assert "graph encoder frozen for the whole run" in (run / "train.log").read_text()


@pytest.mark.e2e
def test_bad_init_settings_fail_before_data_work(tmp_path) -> None:
    proc = run_cli(tmp_path / "r1", f"model.init_from={tmp_path / 'nowhere'}", check=False)
    assert proc.returncode == 2
    assert f"model.init_from={tmp_path / 'nowhere'} does not exist" in proc.stderr
    assert not (tmp_path / "r1").exists()  # refused before the run directory is made
    sweep = tmp_path / "sweep"
    proc = run_cli(
        tmp_path / "unused",
        "-m",
        "random_seed=1,2",
        f"hydra.sweep.dir={sweep}",
        f"model.init_from={tmp_path / 'nowhere'}",
        check=False,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not sweep.exists()
    with pytest.raises(ConfigError, match="freezes a freshly initialised graph encoder"):
        tiny("model.freeze_graph_epochs=3")
    with pytest.raises(ConfigError, match=r"model\.init_scope='encoder' is not one of"):
        tiny("model.init_from=x", "model.init_scope=encoder")
    with pytest.raises(RunError, match=r"model\.init_from="):
        Trainer.from_config(tiny(f"model.init_from={tmp_path}"), tmp_path / "r2")


def test_fine_tuning_composes_with_a_phase_sweep(tmp_path) -> None:
    from fusion_tuner.paths import conf_dir
    from fusion_tuner.sweeps.plan import check_subdir, expand_jobs

    phase = yaml.safe_load((conf_dir() / "phase" / "1.yaml").read_text())
    jobs = expand_jobs(phase["hydra"]["sweeper"]["params"], [f"model.init_from={tmp_path}"])
    # 6 experiments x seeds 1, 2, 3
    assert len(jobs) == 18 and all(f"model.init_from={tmp_path}" in job for job in jobs)
    check_subdir(jobs, "${experiment_name}-seed${random_seed}")  # no collision
    cfg = compose_config(jobs[-1])  # the last experiment's last seed
    assert cfg.model.init_from == str(tmp_path) and cfg.experiment_name != "baseline"


def test_init_from_another_architecture_is_refused_below_the_threshold(
    source, tmp_path, caplog
) -> None:
    # issue 26, item 18: "loaded 12 tensors, skipped 109" used to be an INFO line
    other = (
        "arch.hidden_features=48",
        "text.tiny_hidden_size=64",
        "text.tiny_intermediate_size=96",
    )
    with pytest.raises(RunError, match=r"fills only \d+ of this model's \d+ tensors") as err:
        Trainer.from_config(tiny(f"model.init_from={source}", *other), tmp_path / "a")
    assert "model.init_min_loaded=0" in str(err.value)
    proc = run_cli(tmp_path / "cli", f"model.init_from={source}", *other, check=False)
    assert proc.returncode != 0 and "architecture differs" in proc.stderr + proc.stdout
    with caplog.at_level("WARNING"):
        allowed = Trainer.from_config(
            tiny(f"model.init_from={source}", *other, "model.init_min_loaded=0"), tmp_path / "b"
        )
    assert 0 < allowed.init["loaded_fraction"] < 0.5
    (warning,) = [r for r in caplog.records if "model.init_from loaded only" in r.getMessage()]
    assert warning.levelname == "WARNING"


def test_a_graph_only_source_points_to_the_graph_encoder_scope(tmp_path) -> None:
    graph_only = train_run(tmp_path / "graph_only", "text=none")
    with pytest.raises(RunError, match=r"model\.init_scope=graph_encoder \(all \d+ graph-encoder"):
        Trainer.from_config(tiny(f"model.init_from={graph_only}"), tmp_path / "fused")
    fused = Trainer.from_config(
        tiny(f"model.init_from={graph_only}", "model.init_scope=graph_encoder"), tmp_path / "g"
    )
    assert fused.init["loaded_fraction"] == 1.0


@pytest.mark.slow
def test_formation_energy_run_fine_tuned_on_mbj_bandgap(samples, tmp_path) -> None:
    """The bundled data's typical use: formation energy -> TBmBJ band gap (50 real crystals)."""
    mini = samples / "jarvis_dft3d_mini"
    data = [
        "dataset=jarvis",
        f"dataset.jarvis_dir={mini / 'store_sample50'}",
        f"dataset.descriptions={mini / 'describe_text.json.zip'}",
        "scheduler.epochs=2",
    ]
    src, ft = tmp_path / "formation", tmp_path / "mbj"
    run_cli(src, *data, "dataset.target=formation_energy_peratom")
    run_cli(ft, *data, "dataset.target=mbj_bandgap", f"model.init_from={src}")
    init = json.loads((ft / "metrics.json").read_text())["init"]
    n_tensors = len(torch.load(ft / "best_model.pt", weights_only=True)["model_state"])
    assert init["loaded"] == n_tensors - 2 and init["new"] == 0 and init["skipped"] == 2
    # the normaliser is the mbj training split's mean
    import zipfile

    store = next((mini / "store_sample50").glob("*.zip"))
    with zipfile.ZipFile(store) as zf:
        records = {r["jid"]: r for r in json.loads(zf.read(zf.namelist()[0]))}
    train = json.loads((ft / "split.json").read_text())["train"]
    mean = sum(float(records[i]["mbj_bandgap"]) for i in train) / len(train)
    normalizer = torch.load(ft / "best_model.pt", weights_only=True)["normalizer"]
    assert normalizer["mean"] == pytest.approx(mean, rel=1e-6)
