"""The disk store of a frozen text encoder's outputs: equal to the direct computation, the
frozen part never runs again, built once under concurrency, damaged stores rebuilt, budgets."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fusion_tuner.data.text_states import (
    MANIFEST,
    STATES,
    TextStateStore,
    load_or_build_states,
)
from fusion_tuner.models.builders import build_model
from fusion_tuner.training.text_store import prepare_text_states
from tests.conftest import compose

DATA = ("dataset.demo_size=40", "text.max_length=48", "regularization.graph_dropout=0")
FROZEN = ("text.freeze=true",)
PARTIAL = ("text.train_last_n_layers=1",)  # the tiny BERT has 2 layers: layer 0 is frozen


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("text_store_cache")


def _setup(cache: Path, *overrides: str):
    from fusion_tuner import build_datamodule

    cfg = compose(*DATA, *overrides, cache=cache)
    dm = build_datamodule(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dm.info)
    return cfg, dm, model


def _calls(model) -> dict[str, list[int]]:
    """Counts forward calls of the text encoder's embeddings and of each of its layers."""
    bert = model.text_encoder.model
    calls: dict[str, list[int]] = {"embeddings": []}
    bert.embeddings.register_forward_hook(lambda *a: calls["embeddings"].append(1))
    for i, layer in enumerate(bert.encoder.layer):
        calls[f"layer{i}"] = []
        layer.register_forward_hook(lambda *a, i=i: calls[f"layer{i}"].append(1))
    return calls


def _outputs(model, batch, train: bool, seed: int = 5):
    model.train(train)
    torch.manual_seed(seed)
    out = model(batch)
    return out


@pytest.mark.parametrize(
    ("overrides", "ran"),
    [(FROZEN, set()), (PARTIAL, {"layer1"})],
    ids=["frozen", "train_last_n_layers=1"],
)
def test_outputs_from_the_store_equal_direct_outputs(cache, overrides, ran) -> None:
    cfg, dm, model = _setup(cache, *overrides)
    direct_batch = next(iter(dm.loader("train", batch_size=8, shuffle=False)))
    report = prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))
    assert report["used"] and report["bytes"] > 0
    batch = next(iter(dm.loader("train", batch_size=8, shuffle=False)))
    assert batch.text_states.dtype == torch.float16
    assert batch.text_states.shape == (int(batch.attention_mask.sum()), model.text_encoder.dim)
    assert not hasattr(direct_batch, "text_states")
    calls = _calls(model)
    for train in (False, True):  # eval, and train mode (the frozen part has no dropout)
        for counts in calls.values():
            counts.clear()
        stored = _outputs(model, batch, train)
        assert {k for k, v in calls.items() if v} == ran  # the frozen part did not run
        direct = _outputs(model, direct_batch, train)
        for stage in ("text", "fused"):
            torch.testing.assert_close(
                stored.stages[stage], direct.stages[stage], rtol=1e-2, atol=2e-3
            )
        torch.testing.assert_close(stored.prediction, direct.prediction, rtol=1e-2, atol=2e-3)
    # what trains still learns: the top layer gets the same gradient either way
    if ran:
        top = model.text_encoder.model.encoder.layer[1].output.dense.weight
        grads = []
        for b in (batch, direct_batch):
            model.zero_grad()
            _outputs(model, b, train=True).prediction.sum().backward()
            grads.append(top.grad.clone())
        assert grads[0].abs().sum() > 0
        torch.testing.assert_close(grads[0], grads[1], rtol=2e-2, atol=1e-3)


def test_the_store_serves_every_split_and_is_found_by_the_next_run(cache, caplog) -> None:
    cfg, dm, model = _setup(cache, *FROZEN)
    first = prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))
    _, dm2, model2 = _setup(cache, *FROZEN)
    second = prepare_text_states(cfg, dm2, model2.text_encoder, torch.device("cpu"))
    assert second["used"] and not second["built"] and second["key"] == first["key"]
    for split in ("train", "val", "test"):
        for batch in dm2.loader(split):
            assert batch.text_states.shape[0] == int(batch.attention_mask.sum())
    # each seed's tiny BERT has its own weights, hence its own store
    torch.manual_seed(1)
    other = build_model(cfg, dm2.info)
    third = prepare_text_states(cfg, dm2, other.text_encoder, torch.device("cpu"))
    assert third["key"] != first["key"] and third["built"]


def test_no_store_when_off_when_everything_trains_or_over_budget(tmp_path, caplog) -> None:
    cache = tmp_path
    cfg, dm, model = _setup(cache, *FROZEN, "text.store=off")
    assert prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu")) == {
        "used": False,
        "reason": "text.store=off",
    }
    cfg, dm, model = _setup(cache)  # text=tiny trains every layer
    assert not prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))["used"]
    cfg, dm, model = _setup(cache, *PARTIAL, "text.store_max_gb=0.00001")
    with caplog.at_level(logging.WARNING):
        report = prepare_text_states(cfg, dm, model.text_encoder, torch.device("cpu"))
    assert not report["used"] and "above the budget" in report["reason"]
    assert "text.store_max_gb=1e-05" in caplog.text
    assert not hasattr(next(iter(dm.loader("val"))), "text_states")
    assert not list((cache / "text_states").glob(f"{report['key']}*"))


# ------------------------------------------------------------------- the store on its own
LENGTHS = np.array([3, 1, 4, 2, 5])
HIDDEN = 6


def _states_of(row: int) -> np.ndarray:
    return np.arange(LENGTHS[row] * HIDDEN, dtype=np.float32).reshape(-1, HIDDEN) / 7 + row


def _encode(rows: list[int], log: Path | None = None, pause: float = 0.0) -> torch.Tensor:
    if log is not None:
        with open(log, "a") as fh:
            fh.write("encode\n")
    time.sleep(pause)
    out = torch.full((len(rows), int(LENGTHS.max()), HIDDEN), float("nan"))  # padding: unused
    for i, r in enumerate(rows):
        out[i, : LENGTHS[r]] = torch.from_numpy(_states_of(r))
    return out


def _build(root: Path, log: Path | None = None, pause: float = 0.0, **kw):
    return load_or_build_states(
        root, "k1", {"s": 1}, LENGTHS, HIDDEN, lambda rows: _encode(rows, log, pause), 2, **kw
    )


def _assert_contents(store: TextStateStore) -> None:
    for row in range(len(LENGTHS)):
        np.testing.assert_allclose(store.gather([row]).float().numpy(), _states_of(row), rtol=1e-3)
    got = store.gather([4, 0]).float().numpy()
    np.testing.assert_allclose(got, np.concatenate([_states_of(4), _states_of(0)]), rtol=1e-3)


def test_store_holds_real_tokens_only_in_half_precision(tmp_path) -> None:
    result = _build(tmp_path)
    assert result.built and result.store is not None
    assert result.store.states.shape == (LENGTHS.sum(), HIDDEN)
    assert result.store.states.dtype == np.float16
    assert result.store.nbytes == LENGTHS.sum() * HIDDEN * 2
    assert isinstance(result.store.states, np.memmap)
    _assert_contents(result.store)
    again = _build(tmp_path)
    assert not again.built
    clone = pickle.loads(pickle.dumps(again.store))  # for loader workers: no array inside
    assert clone._states is None
    assert len(pickle.dumps(again.store)) < 2000
    _assert_contents(clone)


def _concurrent(root: str, log: str) -> None:
    result = _build(Path(root), Path(log), pause=0.3)
    _assert_contents(result.store)


def test_concurrent_runs_build_the_store_once(tmp_path) -> None:
    log = tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_concurrent, args=(str(tmp_path), str(log))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().count("encode") == 3  # 5 rows in batches of 2: one build
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1", "k1.lock", "log"]  # no leftovers


@pytest.mark.parametrize("damage", ["truncate", "flip_manifest", "overwrite", "offsets"])
def test_a_damaged_store_is_moved_aside_and_rebuilt(tmp_path, caplog, damage) -> None:
    _build(tmp_path)
    store_dir = tmp_path / "k1"
    states = store_dir / STATES
    if damage == "truncate":
        with open(states, "r+b") as fh:
            fh.truncate(states.stat().st_size - 10)
    elif damage == "flip_manifest":
        manifest = json.loads((store_dir / MANIFEST).read_text())
        manifest["tokens"] += 1
        (store_dir / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "overwrite":
        with open(states, "r+b") as fh:
            fh.seek(200)
            fh.write(b"\x7f" * 40)
    else:
        np.save(store_dir / "offsets.npy", np.zeros(len(LENGTHS) + 1, dtype=np.int64))
    log = tmp_path / "log"
    with caplog.at_level(logging.WARNING):
        result = _build(tmp_path, log)
    assert result.built and log.read_text().count("encode") == 3
    assert "unusable" in caplog.text and "k1" in caplog.text
    assert len(list(tmp_path.glob("k1.corrupt-*"))) == 1
    _assert_contents(result.store)


def test_a_store_over_the_budget_is_not_built(tmp_path) -> None:
    result = _build(tmp_path, max_bytes=int(LENGTHS.sum() * HIDDEN * 2) - 1)
    assert result.store is None and "above the budget" in result.reason
    assert not (tmp_path / "k1").exists()
    assert _build(tmp_path, max_bytes=int(LENGTHS.sum() * HIDDEN * 2)).built


def test_the_weights_identity_covers_the_frozen_part_only() -> None:
    from fusion_tuner.models.text import TextEncoder, tiny_bert

    def encoder(**kw) -> TextEncoder:
        torch.manual_seed(0)
        return TextEncoder(tiny_bert(100, 32, 2, 2, 64, 48, 0), **kw)

    partial = encoder(train_last_n_layers=1)
    key = partial.frozen_identity()
    assert encoder(freeze=True).frozen_identity() != key  # the boundary is part of it
    with torch.no_grad():
        partial.model.encoder.layer[1].output.dense.weight.add_(1.0)  # a trainable layer
    assert partial.frozen_identity() == key
    with torch.no_grad():
        partial.model.encoder.layer[0].output.dense.weight.add_(1e-6)  # a frozen one
    assert partial.frozen_identity() != key
    assert encoder().frozen_layers is None  # everything trains: nothing to store
    with pytest.raises(ValueError, match="nothing to store"):
        encoder().frozen_states(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4))
