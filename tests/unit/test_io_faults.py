"""Writes that cannot half-happen: a full disk names itself, temp names never collide, partial
files are cleaned, and progress within an epoch."""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from fusion_tuner.io import (
    atomic_torch_save,
    atomic_write_dir,
    atomic_write_text,
    remove_stale_temp_files,
)
from fusion_tuner.training.console import BatchProgress


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 256 KiB tmpfs (needs root, as in CI); skipped where it cannot be mounted."""
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_named_with_its_path(full_disk: Path) -> None:
    target = full_disk / "last.pt"
    with pytest.raises(OSError, match=f"no space left on device while writing {target}"):
        atomic_torch_save({"x": torch.zeros(200_000)}, target)
    with pytest.raises(OSError, match="no space left on device"):
        atomic_write_text("x" * 400_000, full_disk / "history.csv")
    with pytest.raises(OSError, match="no space left on device"):
        atomic_write_dir(full_disk / "tokenizer", lambda d: (d / "v.txt").write_text("x" * 400_000))
    assert list(full_disk.iterdir()) == []  # nothing half-written left behind


def test_atomic_dir_replaces_a_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "tokenizer"
    atomic_write_dir(target, lambda d: (d / "a.json").write_text("1"))
    atomic_write_dir(target, lambda d: (d / "b.json").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]
    with pytest.raises(RuntimeError):
        atomic_write_dir(target, lambda d: (_ for _ in ()).throw(RuntimeError("boom")))
    assert sorted(p.name for p in target.iterdir()) == ["b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer"]


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".metrics.json.abc.tmp").write_text("{")
    (tmp_path / ".tokenizer.x.tmp").mkdir()
    (tmp_path / "metrics.json").write_text("{}")
    removed = remove_stale_temp_files(tmp_path)
    assert len(removed) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


class _Batch:
    num_graphs = 4


def test_long_epochs_log_progress_every_quarter(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="fusion_tuner"):
        assert len(list(BatchProgress([_Batch()] * 40, "line", epoch=3))) == 40
    lines = [r.getMessage() for r in caplog.records if "batches" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [
        "epoch 3: 25%",
        "epoch 3: 50%",
        "epoch 3: 75%",
    ]
    assert all("crystals/s" in line for line in lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fusion_tuner"):
        list(BatchProgress([_Batch()] * 5, "line", epoch=1))  # short epochs stay quiet
    assert not caplog.records


def test_the_bar_counts_batches(capsys: pytest.CaptureFixture) -> None:
    assert len(list(BatchProgress([_Batch()] * 7, "bar", epoch=2))) == 7
    assert "epoch 2" in capsys.readouterr().err
