"""One run on two CPU processes (DDP, gloo): the single-process trajectory, rank 0 alone writing,
exact resume after SIGKILL/SIGTERM with no rank left behind, and the spawning machinery."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from fusion_tuner.checkpoint import load_checkpoint
from fusion_tuner.models.fusion import info_nce
from fusion_tuner.training import distributed
from fusion_tuner.training.distributed import Dist, global_rows
from tests.helpers.cli import (
    comparable_history,
    comparable_metrics,
    read_csv,
    run_cli,
    start_until_epochs,
)

pytestmark = pytest.mark.integration

# Equal trajectories need equal dropout masks: every dropout 0 (the tiny BERT's own dropout is
# transformers' fixed 0.1, so the text encoder is frozen, which runs it in eval mode).
EXACT = [
    "regularization.graph_dropout=0",
    "regularization.cross_modal_dropout=0",
    "regularization.fine_grained_dropout=0",
    "regularization.middle_fusion_dropout=0",
    "text.freeze=true",
    "trainer.deterministic=true",
]
# 60 crystals -> train 50, val 8, test 2; batches of 7: uneven slices (4/3) and a last batch of
# one crystal in train and val, so rank 1 gets a ghost; the contrastive loss is gathered.
UNEVEN = [
    "batch.batch_size=7",
    "dataset.train_fraction=0.82",
    "dataset.val_fraction=0.14",
    "dataset.test_fraction=0.04",
    "fusion.use_contrastive_loss=true",
]
TWO = ["trainer.devices=2"]


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def count(text: str, needle: str) -> int:
    return sum(needle in line for line in text.splitlines())


@pytest.mark.slow
def test_two_processes_follow_the_single_process_trajectory(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    keep = "trainer.keep_last_checkpoint=true"  # to check that a resume could read it
    run_cli(one, *EXACT, *UNEVEN, keep)
    out = run_cli(two, *EXACT, *UNEVEN, *TWO, keep)

    h1, h2 = read_csv(one / "history.csv"), read_csv(two / "history.csv")
    assert len(h1) == len(h2) == 3
    for r1, r2 in zip(h1, h2, strict=True):
        for key in r1.keys() - {"epoch_seconds"}:
            assert close(float(r1[key]), float(r2[key])), (r1["epoch"], key, r1[key], r2[key])
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    for split in ("train", "val", "test"):
        assert m1[split]["n"] == m2[split]["n"]
        for key in ("mae", "rmse", "r2"):
            assert close(m1[split][key], m2[split][key]), (split, key)
    for key in ("best_epoch", "epochs_run", "stop_reason", "config_hash", "status"):
        assert m1[key] == m2[key], key
    assert (m1["devices"], m2["devices"]) == (1, 2)
    last = load_checkpoint(two / "last.pt")  # weights_only: plain numbers in its history
    assert [row["train_loss"] for row in last["history"]] == [float(r["train_loss"]) for r in h2]
    for split in ("train", "val", "test"):
        p1, p2 = (read_csv(d / f"predictions_{split}.csv") for d in (one, two))
        assert [r["id"] for r in p1] == [r["id"] for r in p2]  # the plain loader's order
        for a, b in zip(p1, p2, strict=True):
            assert close(float(a["prediction"]), float(b["prediction"])), (split, a["id"])

    # rank 0 alone writes: the same files as a plain run, each line of the run once
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    log = (two / "train.log").read_text()
    console = out.stdout + out.stderr
    for text in (log, console):
        for epoch in (1, 2, 3):
            assert count(text, f"epoch {epoch}/3 train_loss") == 1
        assert count(text, "model: ") == 1
        assert count(text, "done: best epoch") == 1
    assert count(log, "training on 2 CPU processes (DDP, gloo), global batch 7") == 1
    assert "rank 0 of 2" in log


# ---------------------------------------------------------------------- kill and resume
RESUME = ["scheduler.epochs=4", "trainer.deterministic=true", "regularization.graph_dropout=0.3"]


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = _process_table()
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


@pytest.fixture(scope="module")
def reference_two(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp") / "reference"
    run_cli(run_dir, *RESUME, *TWO)
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_two_process_run_resumes_exactly(tmp_path: Path, reference_two: Path, sig: int) -> None:
    killed = tmp_path / "killed"
    proc = start_until_epochs(killed, *RESUME, *TWO, timeout=400)  # 2 epochs done
    ranks = descendants(proc.pid)
    assert len(ranks) >= 2  # the two ranks (and multiprocessing's resource tracker)
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=120)
    deadline = time.time() + 60
    while alive(ranks) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(ranks), "a rank outlived the run's process"
    metrics = json.loads((killed / "metrics.json").read_text())
    if sig == signal.SIGKILL:
        assert metrics["status"] == "running"  # killed: nothing could record the end
    else:
        assert code == 128 + signal.SIGTERM
        assert (metrics["status"], metrics["reason"]) == ("interrupted", "interrupted by SIGTERM")
    assert 2 <= len(comparable_history(killed)) < 4

    out = run_cli(killed, *RESUME, *TWO)
    assert count(out.stdout + out.stderr, "resumed from last.pt") == 1
    assert comparable_history(killed) == comparable_history(reference_two)
    assert comparable_metrics(killed) == comparable_metrics(reference_two)
    attempts = json.loads((killed / "metrics.json").read_text())["attempts"]
    assert [a["action"] for a in attempts] == ["fresh", "resumed after interruption"]


# -------------------------------------------------------------------- spawning, gathering
def _gathered_info_nce(dist: Dist, a: torch.Tensor, b: torch.Tensor, sizes: list[int]):
    """This rank holds rows ``[lo, hi)`` of (a, b), or a ghost when none; returns the global
    InfoNCE and the gradients of its rows after DDP's average, from every rank."""
    lo = sum(sizes[: dist.rank])
    hi = lo + sizes[dist.rank]
    weight = torch.ones(hi - lo) if hi > lo else torch.zeros(1)
    mine_a = (a[lo:hi] if hi > lo else a[:1]).clone().requires_grad_(True)
    mine_b = (b[lo:hi] if hi > lo else b[:1]).clone().requires_grad_(True)
    size = a.size(0)
    loss = info_nce(
        global_rows(mine_a, weight, size, dist), global_rows(mine_b, weight, size, dist), 0.1
    )
    (loss * dist.world).backward()
    grads = [(g / dist.world).tolist() for g in (mine_a.grad, mine_b.grad)]  # DDP's mean
    return dist.all_gather_object((float(loss.detach()), grads, os.getpid()))


def _failing(dist: Dist) -> None:
    if dist.rank == 1:
        raise ValueError("rank one cannot go on")
    dist.barrier()


@pytest.mark.parametrize("sizes", [[3, 2], [1, 0]], ids=["uneven", "ghost"])
def test_gathered_info_nce_equals_the_whole_batch(sizes: list[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(sum(sizes), 4, generator=gen), torch.randn(sum(sizes), 4, generator=gen)
    per_rank = distributed.spawn(_gathered_info_nce, 2, (a, b, sizes), "gloo")
    whole_a, whole_b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    expected = info_nce(whole_a, whole_b, 0.1)
    expected.backward()
    pids = {pid for _, _, pid in per_rank}
    assert len(pids) == 2 and os.getpid() not in pids
    lo = 0
    for (loss, (grad_a, grad_b), _), size in zip(per_rank, sizes, strict=True):
        assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
        if size:
            torch.testing.assert_close(torch.tensor(grad_a), whole_a.grad[lo : lo + size])
            torch.testing.assert_close(torch.tensor(grad_b), whole_b.grad[lo : lo + size])
        else:  # a ghost's gradient is zero
            assert torch.tensor(grad_a).abs().max() == 0
        lo += size


@pytest.mark.slow
def test_a_failing_rank_stops_the_others_with_its_error() -> None:
    """Rank 1 fails, rank 0 does not: the error and rank 1's traceback reach the parent (only
    rank 0 writes train.log, so the parent must log it; it did not, and a run whose rank 0 was
    stopped before failing in its turn had no traceback anywhere)."""
    with pytest.raises(
        distributed.RankFailed, match=r"rank 1: ValueError: rank one cannot go on"
    ) as info:
        distributed.spawn(_failing, 2, (), "gloo")
    tb = info.value.rank_traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert "in _failing" in tb and tb.rstrip().endswith("ValueError: rank one cannot go on")


def _killed_rank(dist: Dist) -> None:
    if dist.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    for _ in range(3):  # rank 0 loses its peer here: "Connection reset by peer" or so
        dist.barrier()
        time.sleep(1)


def test_a_rank_killed_by_a_signal_is_named_not_its_peers_lost_connection() -> None:
    with pytest.raises(distributed.RankFailed) as info:
        distributed.spawn(_killed_rank, 2, (), "gloo")
    assert str(info.value) == "rank 1 was killed by SIGKILL (out of memory?)"
    assert info.value.rank is None and info.value.rank_traceback == ""


@pytest.mark.slow
def test_a_rank_error_fails_the_run_with_that_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    out = run_cli(tmp_path / "run", *TWO, f"text.model_name_or_path={missing}", check=False)
    assert out.returncode != 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("RankFailed: rank ")
    assert "DataError: could not load the tokenizer" in metrics["error"]
    log = (tmp_path / "run" / "train.log").read_text()
    # the failing rank's traceback whichever rank failed first: rank 0 logs its own, another
    # rank's is logged by the parent (rank 0 may be stopped before it fails in its turn)
    assert count(log, "run failed: rank ") == 1
    assert "Traceback (most recent call last)" in log
    assert "DataError: could not load the tokenizer" in log.split("Traceback", 1)[1]
