"""The commands' wing: one dispatcher, one hyphenated console script per command."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from fusion_tuner.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_dispatcher_runs_the_named_command(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "missing")]) == 2
    assert f"sweep directory {tmp_path / 'missing'} not found" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    assert "sample://perov5_castelli" in capsys.readouterr().out


def test_help_is_the_training_help(capsys):
    try:
        main(["help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "python -m fusion_tuner [-m] [GROUP=OPTION ...]" in capsys.readouterr().out


def test_one_hyphenated_console_script_per_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(name.startswith("fusion-tuner") and "." not in name for name in scripts)
    assert scripts["fusion-tuner"] == "fusion_tuner.cli:main"
    for command, module in COMMANDS.items():
        assert scripts[f"fusion-tuner-{command}"] == f"{module}:main"
        assert callable(importlib.import_module(module).main)
    assert len(scripts) == len(COMMANDS) + 1
