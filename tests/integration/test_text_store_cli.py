"""The text-state store through the CLI: two runs started together build it once, and both
train from it (the frozen encoder never runs in their epochs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import TINY

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_two_concurrent_runs_build_the_store_once_and_train_from_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = os.environ | {"PYTHONUNBUFFERED": "1", "FUSION_TUNER_CACHE_DIR": str(cache)}
    args = [*TINY, "text.freeze=true", "scheduler.epochs=1", "budget.max_structures=40"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fusion_tuner", f"hydra.run.dir={tmp_path / name}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    reports = [json.loads((tmp_path / n / "data_report.json").read_text()) for n in "ab"]
    stores = [r["text_store"] for r in reports]
    assert all(s["used"] for s in stores)
    assert sorted(s["built"] for s in stores) == [False, True]  # one built it, one found it
    assert stores[0]["key"] == stores[1]["key"]
    assert [p.name for p in (cache / "text_states").iterdir() if p.is_dir()] == [stores[0]["key"]]
    log = (tmp_path / "a" / "train.log").read_text()
    assert "the frozen part of the text encoder will not run again" in log
