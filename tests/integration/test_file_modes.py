"""Files of a run, a sweep and a report are written with the process umask, not 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion_tuner.io import atomic_write_dir, atomic_write_text, process_umask
from fusion_tuner.sweeps.plan_report import build_report
from fusion_tuner.sweeps.summary_files import write_summary
from tests.helpers.runs import train_run
from tests.helpers.sweeps import fixed_design

pytestmark = pytest.mark.integration


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert process_umask() == 0o027
        atomic_write_text("x", tmp_path / "a.txt")
        atomic_write_dir(tmp_path / "d", lambda p: (p / "f").write_text("y"))
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == 0o640
    assert mode(tmp_path / "d") == 0o750
    assert process_umask() == old


def test_run_sweep_and_report_files_are_readable_by_group_and_others(
    tmp_path: Path, umask_022: None
) -> None:
    sweep = tmp_path / "multirun" / "phase1" / "2026-01-01_00-00-00"
    fixed_design(sweep, 1)
    run = train_run(sweep / "baseline-seed1", "experiment=baseline", "random_seed=1")
    write_summary(sweep)
    build_report([tmp_path / "multirun"], out=tmp_path / "report", cka=False)
    files = [
        run / "metrics.json",
        run / "best_model.pt",
        run / "curves.png",
        run / "history.csv",
        sweep / "summary.md",
        tmp_path / "report" / "report.html",
        tmp_path / "report" / "report.md",
    ]
    for f in files:
        assert mode(f) == 0o644, f"{f}: {oct(mode(f))}"
    for f in run.rglob("*"):
        if f.is_file():
            assert mode(f) & 0o044 == 0o044, f"{f}: {oct(mode(f))}"
        else:  # folders (tokenizer/, .hydra/) can be entered by group and others
            assert mode(f) & 0o055 == 0o055, f"{f}: {oct(mode(f))}"
    assert (run / "tokenizer").is_dir()


def test_the_cached_tokenizer_folder_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    from fusion_tuner.data.text import tiny_tokenizer

    tiny_tokenizer(["a cubic crystal", "a layered crystal"] * 20, 64, tmp_path)
    (folder,) = (tmp_path / "tokenizers").iterdir()
    assert mode(folder) == 0o755
