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


# ------------------------------------------- values, not only shapes (issue 26, item 20)
def _damage(entry: dict, how: str) -> None:
    if how == "edge_index out of range":
        entry["edge_index"][1, 5] = 10_000
    elif how == "negative edge_index":
        entry["edge_index"][0, 0] = -1
    elif how == "NaN bond length":
        entry["bond_length"][3] = float("nan")
    elif how == "zero bond length":
        entry["bond_length"][3] = 0.0
    elif how == "lg_src out of range":
        entry["lg_src"][7] = 1_000_000
    elif how == "cosine out of range":
        entry["angle_cos"][2] = 3.0
    elif how == "offsets backwards":
        entry["edge_ptr"][2], entry["edge_ptr"][3] = entry["edge_ptr"][3], entry["edge_ptr"][2]


DAMAGES = [
    "edge_index out of range",
    "negative edge_index",
    "NaN bond length",
    "zero bond length",
    "lg_src out of range",
    "cosine out of range",
    "offsets backwards",
]


def _entry() -> dict:
    from fusion_tuner.data import features
    from fusion_tuner.data.demo import generate_demo

    return features.featurize_all(generate_demo(20, 0, 0.05), 8.0, 12) | {"load_report": {}}


@pytest.mark.parametrize("how", DAMAGES)
def test_the_graph_check_reads_values(how: str) -> None:
    from fusion_tuner.data.store import GraphStore
    from fusion_tuner.errors import DataError

    entry = _entry()
    GraphStore.check(entry)  # the good entry passes
    _damage(entry, how)
    with pytest.raises(DataError, match="inconsistent graph cache entry"):
        GraphStore.check(entry)


def test_bad_values_of_the_last_crystal_and_in_a_later_chunk_are_found(monkeypatch) -> None:
    from fusion_tuner.data import store as store_module
    from fusion_tuner.errors import DataError

    monkeypatch.setattr(store_module, "_CHUNK", 64)
    entry = _entry()
    store_module.GraphStore.check(entry)
    last = int(entry["atom_ptr"][-1] - entry["atom_ptr"][-2])  # one past its last atom
    entry["edge_index"][0, -1] = last
    with pytest.raises(DataError, match=r"outside its crystal \(edge_index\)"):
        store_module.GraphStore.check(entry)
    entry = _entry()
    entry["bond_length"][-1] = float("inf")
    with pytest.raises(DataError, match="bond length is not a finite positive number"):
        store_module.GraphStore.check(entry)


@pytest.mark.parametrize("how", ["edge_index out of range", "NaN bond length"])
def test_a_cache_entry_with_bad_values_is_quarantined_and_rebuilt(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    from fusion_tuner import build_datamodule
    from tests.conftest import compose

    cfg = compose("dataset.demo_size=30", "text.max_length=32", cache=tmp_path)
    good = build_datamodule(cfg)
    (path,) = (tmp_path / "features").glob("graphs-*.pt")
    entry = torch.load(path, weights_only=True)
    _damage(entry, how)
    torch.save(entry, path)
    with caplog.at_level("WARNING"):
        again = build_datamodule(cfg)
    assert again.report["cache"]["graphs"][1] is False  # rebuilt, not used
    assert f"cache entry {path} is unusable" in caplog.text
    assert list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert torch.equal(again.graphs.edge_index, good.graphs.edge_index)
    assert bool(torch.isfinite(again.graphs.bond_length).all())
