"""Early stopping, schedules, optimizer groups, checkpoints and the config hash."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from fusion_tuner.checkpoint import load_checkpoint, save_checkpoint
from fusion_tuner.config import SchedulerConfig, config_hash, max_epochs
from fusion_tuner.errors import CheckpointError
from fusion_tuner.training.early_stopping import EarlyStopping
from fusion_tuner.training.optim import build_optimizer, build_scheduler, param_groups
from tests.conftest import compose


def run_stopper(values: list[float], patience: int, min_delta: float) -> int | None:
    stopper = EarlyStopping(patience, min_delta)
    for epoch, v in enumerate(values, start=1):
        if stopper.step(v, epoch):
            return epoch
    return None


def test_noisy_plateau_that_only_wiggles_fires() -> None:
    # falls, then wiggles by < min_delta around 1.0, sometimes a hair below the best
    values = [3.0, 2.0, 1.0] + [1.0 + (-1) ** i * 0.0004 - 0.00001 * i for i in range(30)]
    assert run_stopper(values, patience=10, min_delta=0.001) == 13


def test_late_real_improvement_does_not_fire_early() -> None:
    values = [2.0, 1.5, 1.2] + [1.2] * 8 + [1.0, 0.9] + [0.9] * 3
    assert run_stopper(values, patience=10, min_delta=0.001) is None
    assert run_stopper(values + [0.9] * 10, patience=10, min_delta=0.001) == 23


def test_plan_baseline_patience_can_never_fire() -> None:
    stopper = EarlyStopping(patience=150, min_delta=0.001)
    assert not stopper.can_fire(100)
    assert run_stopper([1.0] * 100, patience=150, min_delta=0.001) is None
    assert EarlyStopping(100, 0.0).can_fire(300)


def test_early_stopping_state_round_trips() -> None:
    a = EarlyStopping(3, 0.1)
    for e, v in enumerate([1.0, 0.95, 0.99], 1):
        a.step(v, e)
    b = EarlyStopping(3, 0.1)
    b.load_state_dict(a.state_dict())
    assert b.step(0.97, 4) and (b.best, b.best_epoch) == (1.0, 1)


def lrs(scheduler: str, steps: int = 20, **kw) -> list[float]:
    s = SchedulerConfig(learning_rate=1.0, scheduler=scheduler, **kw)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, s, epochs=s.epochs, steps_per_epoch=steps // s.epochs)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_lambda_is_linear_warmup_then_constant() -> None:
    got = lrs("lambda", steps=10, warmup_steps=4, epochs=10)
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_cosine_warms_up_then_decays_to_its_floor() -> None:
    got = lrs("cosine", steps=20, warmup_steps=5, epochs=10, min_lr_ratio=0.1)
    assert got[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in itertools.pairwise(got[4:]))
    assert got[-1] == pytest.approx(
        0.1 + 0.9 * (1 + torch.cos(torch.tensor(14 / 15 * torch.pi)).item()) / 2
    )


def test_onecycle_rises_for_warmup_steps_then_anneals() -> None:
    got = lrs("onecycle", steps=20, warmup_steps=8, epochs=10)
    assert got[0] == pytest.approx(1 / 25)
    assert max(got) == pytest.approx(1.0) and got.index(max(got)) == 8
    assert got[-1] < 0.05


def test_step_and_none() -> None:
    got = lrs("step", steps=20, warmup_steps=0, epochs=10, step_size=3, step_gamma=0.5)
    assert got[:6] == [1.0] * 6 and got[6] == 0.5 and got[12] == 0.25  # 2 steps per epoch
    assert set(lrs("none", steps=6, warmup_steps=3, epochs=3)) == {1.0}


def test_weight_decay_only_on_matrices() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    decay, no_decay = param_groups(model, 0.01)
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 3), (1, 4)]
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert len(no_decay["params"]) == 4
    opt = build_optimizer(model, SchedulerConfig(optimizer="sgd"), 0.002)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["weight_decay"] == 0.002


def test_checkpoint_refuses_arbitrary_unpickling(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"model_state": Evil(), "config": {}}, fh)
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model_state": {"w": torch.ones(2)}, "config": {"a": 1}})
    assert load_checkpoint(good)["code_version"]


def test_config_hash_ignores_tracking_and_paths_only() -> None:
    base = config_hash(compose())
    assert config_hash(compose("logger=wandb", "dataset.cache_dir=/elsewhere")) == base
    assert config_hash(compose("regularization.graph_dropout=0.2")) != base
    assert config_hash(compose("random_seed=1")) != base


def test_budget_caps_epochs() -> None:
    assert max_epochs(compose()) == 100
    assert max_epochs(compose("budget=quick")) == 8
    assert max_epochs(compose("budget=quick", "scheduler.epochs=2")) == 2


def test_torch_load_is_only_ever_called_with_weights_only() -> None:
    import re

    import fusion_tuner

    root = Path(fusion_tuner.__file__).parent
    calls = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            calls.append((path.name, m.group(1)))
    assert len(calls) >= 3, "the scan found no torch.load call: it is broken"
    assert all("weights_only=True" in args for _, args in calls), calls


def test_compile_without_a_cpp_compiler_is_refused_before_any_work(monkeypatch) -> None:
    from torch._inductor import cpp_builder, exc

    from fusion_tuner.errors import ConfigError
    from fusion_tuner.training.trainer import check_compile_toolchain

    check_compile_toolchain(torch.device("cpu"))  # this machine has g++

    def no_compiler() -> str:
        raise exc.InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(ConfigError, match=r"trainer\.compile=true.*apt-get install g\+\+.*false"):
        check_compile_toolchain(torch.device("cpu"))
    check_compile_toolchain(torch.device("cuda"))  # only the CPU toolchain is checked here
