"""The command that resumes a stopped run or sweep pins its directory."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from fusion_tuner.rerun import ARGV_ENV, command, resume_command


def test_a_single_run_gets_its_run_dir_in_place_of_the_old_one(tmp_path: Path) -> None:
    cmd = command(["budget=quick", "hydra.run.dir=elsewhere", "text.name=a b"], tmp_path, False)
    words = shlex.split(cmd)
    assert words[:3] == ["python", "-m", "fusion_tuner"]
    assert words[3:] == ["budget=quick", "text.name=a b", f"hydra.run.dir={tmp_path.resolve()}"]


def test_a_sweep_gets_minus_m_and_its_sweep_dir(tmp_path: Path) -> None:
    words = shlex.split(command(["+phase=1", "--multirun", "seed=1,2"], tmp_path, True))
    assert words[3:] == ["-m", "+phase=1", "seed=1,2", f"hydra.sweep.dir={tmp_path.resolve()}"]


def test_the_cli_arguments_are_used_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ARGV_ENV, json.dumps(["-m", "+phase=1"]))
    sweep = tmp_path / "sweep"
    words = shlex.split(resume_command(sweep / "e01-seed1"))
    assert words[3:] == ["-m", "+phase=1", f"hydra.sweep.dir={sweep.resolve()}"]


def test_without_the_cli_the_run_s_recorded_overrides_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ARGV_ENV, raising=False)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- budget=quick\n- random_seed=7\n")
    words = shlex.split(resume_command(tmp_path))
    assert words[3:] == ["budget=quick", "random_seed=7", f"hydra.run.dir={tmp_path.resolve()}"]
