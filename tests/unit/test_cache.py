"""The featurisation cache: keyed by what matters, built once under concurrency, atomic."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest
import torch

from fusion_tuner.data.cache import atomic_torch_save, load_or_build


def _slow_build(path: str, log: str) -> None:
    def build() -> dict:
        with open(log, "a") as fh:
            fh.write("built\n")
        time.sleep(0.5)
        return {"x": torch.arange(3)}

    entry, _ = load_or_build(Path(path), build)
    assert entry["x"].tolist() == [0, 1, 2]


def test_concurrent_builders_build_once(tmp_path: Path) -> None:
    target, log = tmp_path / "entry.pt", tmp_path / "log"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(str(target), str(log))) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert log.read_text().count("built") == 1


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "entry.pt"

    def boom() -> dict:
        raise RuntimeError("featurisation failed")

    with pytest.raises(RuntimeError):
        load_or_build(target, boom)
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    entry, hit = load_or_build(target, lambda: {"ok": 1})
    assert entry == {"ok": 1} and not hit
    assert load_or_build(target, lambda: {"ok": 2}) == ({"ok": 1}, True)


def test_atomic_save_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.pt"
    atomic_torch_save({"v": 1}, target)
    atomic_torch_save({"v": 2}, target)
    assert torch.load(target, weights_only=True) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
