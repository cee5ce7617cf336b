"""``experiment=alignn_reference``: upstream ALIGNN's training recipe, and the options it needs.

The table below is upstream's (alignn 2026.8.11 from the package index): ``train_prop_model`` in
``alignn/train_props.py`` (the helper the JARVIS leaderboard runs used), the ``OneCycleLR`` call
in ``alignn/train.py`` (torch's defaults for what it does not pass), the ``ALIGNNConfig`` and
``TrainingConfig`` defaults in ``alignn/models/alignn.py`` and ``alignn/config.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fusion_tuner import compose_config
from fusion_tuner.checkpoint import config_from_dict, config_to_dict
from fusion_tuner.config import Config, SchedulerConfig, validate
from fusion_tuner.errors import ConfigError
from fusion_tuner.models.builders import readout_head
from fusion_tuner.training.optim import build_optimizer, build_scheduler

# (our key, upstream's value, where upstream sets it)
UPSTREAM = [
    ("text.enabled", False, "ALIGNN is graph-only"),
    ("batch.batch_size", 64, "train_props.py train_prop_model: batch_size = 64"),
    ("scheduler.learning_rate", 1e-3, "train_props.py train_prop_model(learning_rate=0.001)"),
    ("scheduler.optimizer", "adamw", 'train_props.py config["optimizer"]'),
    ("scheduler.scheduler", "onecycle", "train_props.py scheduler = 'onecycle'"),
    ("scheduler.epochs", 300, "train_props.py n_epochs = 300; config.py epochs = 300"),
    ("scheduler.pct_start", 0.3, "train.py OneCycleLR(..., pct_start=0.3)"),
    ("scheduler.cycle_momentum", True, "train.py OneCycleLR: torch default"),
    ("scheduler.base_momentum", 0.85, "train.py OneCycleLR: torch default"),
    ("scheduler.max_momentum", 0.95, "train.py OneCycleLR: torch default"),
    ("regularization.weight_decay", 1e-5, 'train_props.py config["weight_decay"] = 1e-05'),
    ("regularization.graph_dropout", 0.0, "models/alignn.py: no dropout"),
    ("arch.readout", "linear", "models/alignn.py ALIGNN.fc = nn.Linear(hidden, 1)"),
    ("arch.alignn_layers", 4, "models/alignn.py ALIGNNConfig.alignn_layers"),
    ("arch.gcn_layers", 4, "models/alignn.py ALIGNNConfig.gcn_layers"),
    ("arch.hidden_features", 256, "models/alignn.py ALIGNNConfig.hidden_features"),
    ("arch.embedding_features", 64, "models/alignn.py ALIGNNConfig.embedding_features"),
    ("dataset.bond_rbf_bins", 80, "models/alignn.py ALIGNNConfig.edge_input_features"),
    ("dataset.angle_rbf_bins", 40, "models/alignn.py ALIGNNConfig.triplet_input_features"),
    ("dataset.cutoff", 8.0, "config.py TrainingConfig.cutoff"),
    ("dataset.max_neighbors", 12, "config.py TrainingConfig.max_neighbors"),
    ("dataset.neighbor_strategy", "k-nearest", "config.py TrainingConfig.neighbor_strategy"),
    ("trainer.loss", "mse", 'train_props.py config["criterion"] = "mse"'),
    ("trainer.target_scale", "raw", "config.py standard_scalar_and_pca = False"),
    ("trainer.grad_clip_norm", None, "train.py: no clipping"),
]


def _get(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("key", "value", "where"), UPSTREAM, ids=[k for k, *_ in UPSTREAM])
def test_recipe_is_upstreams(key: str, value, where: str) -> None:
    assert _get(compose_config(["experiment=alignn_reference"]), key) == value, where


def test_recipe_never_stops_early_and_ignores_warmup_steps() -> None:
    cfg = compose_config(["experiment=alignn_reference"])
    # upstream has no early stopping (config.py n_early_stopping = None): patience >= epochs
    assert cfg.scheduler.n_early_stopping >= cfg.scheduler.epochs
    assert cfg.experiment_name == "alignn_reference"


def test_plan_defaults_unchanged_by_the_new_keys() -> None:
    cfg = compose_config()
    assert (cfg.arch.readout, cfg.trainer.target_scale) == ("mlp", "standardized")
    s = cfg.scheduler
    assert (s.pct_start, s.cycle_momentum, s.base_momentum, s.max_momentum) == (
        None,
        False,
        0.85,
        0.95,
    )


def test_checkpoint_config_without_the_new_keys_loads_with_todays_behaviour() -> None:
    raw = config_to_dict(Config())
    for group, key in [
        ("arch", "readout"),
        ("trainer", "target_scale"),
        ("scheduler", "pct_start"),
        ("scheduler", "cycle_momentum"),
        ("scheduler", "base_momentum"),
        ("scheduler", "max_momentum"),
    ]:
        del raw[group][key]
    cfg = config_from_dict(raw)
    assert cfg.arch.readout == "mlp" and cfg.trainer.target_scale == "standardized"
    assert cfg.scheduler.pct_start is None and cfg.scheduler.cycle_momentum is False


def test_readout_linear_is_one_linear_and_mlp_is_todays_head() -> None:
    linear, mlp = readout_head(16, 8, "linear"), readout_head(16, 8, "mlp")
    assert isinstance(linear, nn.Linear) and linear.weight.shape == (1, 16)
    assert [type(m) for m in mlp] == [nn.Linear, nn.SiLU, nn.Linear]
    assert mlp[0].weight.shape == (8, 16) and mlp[2].weight.shape == (1, 8)


def test_readout_reaches_the_built_model() -> None:
    from fusion_tuner.models.builders import build_model

    info = {"modality": "graph"}
    cfg = compose_config(["text=none", "arch.hidden_features=8", "arch.readout=linear"])
    assert isinstance(build_model(cfg, info).head, nn.Linear)
    cfg = compose_config(["text=none", "arch.hidden_features=8"])
    assert isinstance(build_model(cfg, info).head, nn.Sequential)


def _pair(s: SchedulerConfig, total: int, optimizer: str = "adamw"):
    torch.manual_seed(0)
    ours_model, ref_model = nn.Linear(3, 1), nn.Linear(3, 1)
    ours_opt = build_optimizer(ours_model, s, 1e-5)
    ref_opt = build_optimizer(ref_model, s, 1e-5)
    ours = build_scheduler(ours_opt, s, total, 1)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=s.learning_rate, total_steps=total, pct_start=s.pct_start or 0.0
    )
    return ours_opt, ours, ref_opt, ref


def _momentum(opt: torch.optim.Optimizer) -> float:
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_onecycle_pct_start_and_momentum_equal_torchs_onecyclelr(optimizer: str) -> None:
    s = SchedulerConfig(optimizer=optimizer, pct_start=0.3, cycle_momentum=True)
    total = 50
    ours_opt, ours, ref_opt, ref = _pair(s, total)
    lrs, moms = [], []
    for _ in range(total):
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"])
        assert _momentum(ours_opt) == pytest.approx(_momentum(ref_opt))
        lrs.append(ours_opt.param_groups[0]["lr"])
        moms.append(_momentum(ours_opt))
        for opt, sched in ((ours_opt, ours), (ref_opt, ref)):
            opt.step()
            sched.step()
    peak = lrs.index(max(lrs))
    assert peak == round(0.3 * total) - 1  # the rise takes pct_start of the run
    assert lrs[0] == pytest.approx(1e-3 / 25) and max(lrs) == pytest.approx(1e-3)
    # momentum runs against the lr: max at the start, base at the lr's peak
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85)


def test_onecycle_without_momentum_cycling_keeps_beta1() -> None:
    s = SchedulerConfig(pct_start=0.3, cycle_momentum=False)
    opt = build_optimizer(nn.Linear(3, 1), s, 0.0)
    sched = build_scheduler(opt, s, 20, 1)
    for _ in range(20):
        assert opt.param_groups[0]["betas"][0] == 0.9
        opt.step()
        sched.step()


def test_plan_onecycle_is_still_the_warmup_steps_schedule() -> None:
    s = SchedulerConfig(warmup_steps=10)
    opt = build_optimizer(nn.Linear(3, 1), s, 0.0)
    sched = build_scheduler(opt, s, 100, 1)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs.index(max(lrs)) == 10 and opt.param_groups[0]["betas"][0] == 0.9


def test_raw_target_scale_trains_on_the_raw_target(tmp_path) -> None:
    from fusion_tuner.checkpoint import load_checkpoint
    from tests.helpers.runs import train_run

    run = train_run(
        tmp_path / "raw",
        "experiment=alignn_reference",
        "scheduler.epochs=1",
        "batch.batch_size=16",
        "arch.hidden_features=16",
        "arch.embedding_features=8",
        "arch.alignn_layers=1",
        "arch.gcn_layers=1",
    )
    state = load_checkpoint(run / "best_model.pt")["model_state"]
    assert float(state["target_mean"]) == 0.0 and float(state["target_std"]) == 1.0
    assert state["head.weight"].shape == (1, 16)  # the linear readout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scheduler.pct_start=1.5"], "scheduler.pct_start=1.5 must lie in (0, 1)"),
        (["scheduler.pct_start=0.3", "scheduler.scheduler=cosine"], "scheduler.pct_start is read"),
        (["scheduler.cycle_momentum=true", "scheduler.scheduler=none"], "cycle_momentum is read"),
        (["scheduler.base_momentum=0.99"], "scheduler.base_momentum=0.99 exceeds"),
        (["arch.readout=deep"], "arch.readout='deep' is not one of mlp, linear"),
        (["trainer.target_scale=log"], "trainer.target_scale='log' is not one of"),
    ],
)
def test_new_keys_are_validated(overrides: list[str], message: str) -> None:
    cfg = compose_config(overrides, check=False)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert message in str(err.value)


def test_torch_onecycle_resumes_where_it_stopped() -> None:
    """A resume restores the optimizer, then the schedule (as ``Trainer.resume``): the lr and
    momentum go on as in an uninterrupted run."""
    s = SchedulerConfig(pct_start=0.3, cycle_momentum=True)

    def fresh():
        torch.manual_seed(0)
        opt = build_optimizer(nn.Linear(3, 1), s, 1e-5)
        return opt, build_scheduler(opt, s, 40, 1)

    whole_opt, whole = fresh()
    part_opt, part = fresh()
    for _ in range(15):
        for opt, sched in ((whole_opt, whole), (part_opt, part)):
            opt.step()
            sched.step()
    saved = (part_opt.state_dict(), part.state_dict())
    resumed_opt, resumed = fresh()
    resumed_opt.load_state_dict(saved[0])
    resumed.load_state_dict(saved[1])
    for _ in range(25):
        assert resumed_opt.param_groups[0]["lr"] == pytest.approx(whole_opt.param_groups[0]["lr"])
        assert resumed_opt.param_groups[0]["betas"] == pytest.approx(
            whole_opt.param_groups[0]["betas"]
        )
        for opt, sched in ((whole_opt, whole), (resumed_opt, resumed)):
            opt.step()
            sched.step()
