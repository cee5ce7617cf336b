"""The training loop's knobs are live: each changes the lr trajectory, the updates, the batches
or the stop epoch (same seed, same data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusion_tuner import compose_config
from fusion_tuner.training.loggers import NullLogger
from fusion_tuner.training.trainer import Trainer
from tests.helpers.cli import TINY

pytestmark = pytest.mark.integration

BASE = [
    *TINY,
    "dataset.demo_size=48",
    "batch.batch_size=8",
    "scheduler.epochs=4",
    "scheduler.min_delta=100",
]  # min_delta=100: no epoch ever "improves"


def signature(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose_config([*BASE, *overrides])
    run_dir = tmp_path / str(abs(hash(overrides)))
    run_dir.mkdir(parents=True)
    trainer = Trainer.from_config(cfg, run_dir, NullLogger())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.loader_gen.manual_seed(cfg.random_seed * 100_003 + 1)
    first_batch = list(next(iter(trainer.train_loader)).sample_id)
    trainer.fit()
    after = list(trainer.model.parameters())
    update = torch.cat([(a.detach() - b).flatten() for a, b in zip(after, before, strict=True)])
    return {
        "lrs": [round(float(r["lr"]), 12) for r in trainer.history],
        "schedule": [trainer.scheduler.lr_lambdas[0](s) for s in range(40)],
        "update": update,
        "first_batch": first_batch,
        "epochs_run": len(trainer.history),
        "groups": [(len(g["params"]), g["weight_decay"]) for g in trainer.optimizer.param_groups],
        "optimizer": type(trainer.optimizer).__name__,
    }


def changed(a: dict, b: dict) -> list[str]:
    out = [
        k
        for k in ("lrs", "schedule", "first_batch", "epochs_run", "groups", "optimizer")
        if a[k] != b[k]
    ]
    if a["update"].shape != b["update"].shape or not torch.allclose(
        a["update"], b["update"], atol=1e-7
    ):
        out.append("update")
    return out


LOOP_KNOBS = [
    ("scheduler.learning_rate=0.0005", {"lrs", "update"}),
    ("scheduler.optimizer=sgd", {"optimizer", "update"}),
    ("scheduler.scheduler=cosine", {"schedule", "update"}),
    ("scheduler.warmup_steps=20", {"schedule", "update"}),
    ("scheduler.epochs=3", {"epochs_run"}),
    ("scheduler.n_early_stopping=2", {"epochs_run"}),
    ("batch.batch_size=4", {"first_batch", "update"}),
    ("regularization.weight_decay=0.002", {"groups", "update"}),
    ("random_seed=7", {"first_batch", "update"}),
    ("trainer.grad_clip_norm=0.001", {"update"}),
]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict:
    return signature(tmp_path_factory.mktemp("loop_base"))


@pytest.mark.parametrize(("override", "expected"), LOOP_KNOBS, ids=[k for k, _ in LOOP_KNOBS])
def test_every_loop_knob_is_live(
    baseline: dict, tmp_path: Path, override: str, expected: set
) -> None:
    got = set(changed(baseline, signature(tmp_path, override)))
    assert expected <= got, f"{override} changed only {sorted(got)}"


@pytest.mark.parametrize(
    ("base", "override"),
    [
        (("scheduler.optimizer=sgd",), "scheduler.momentum=0.5"),
        (("trainer.loss=huber",), "trainer.huber_delta=0.1"),
        (
            ("scheduler.scheduler=step", "scheduler.warmup_steps=0", "scheduler.step_size=1"),
            "scheduler.step_gamma=0.1",
        ),
    ],
)
def test_dependent_loop_knobs_are_live(
    tmp_path: Path, base: tuple[str, ...], override: str
) -> None:
    a = signature(tmp_path / "a", *base)
    b = signature(tmp_path / "b", *base, override)
    assert {"update"} <= set(changed(a, b)), override


def test_early_stopping_fires_with_patience(tmp_path: Path) -> None:
    cfg = compose_config([*BASE, "scheduler.n_early_stopping=2", "scheduler.epochs=10"])
    from fusion_tuner.training.run import train

    metrics = train(cfg, tmp_path / "es")
    assert metrics["stop_reason"] == "early_stopping"
    assert metrics["epochs_run"] == 3  # epoch 1 sets the best; 2 and 3 fail to beat it by 100
    assert metrics["early_stopping_can_fire"] is True
    assert metrics["best_epoch"] >= 1
