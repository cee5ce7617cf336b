"""The toy task app of the sweeper's tests (``tests/assets/toy_app``: the sphere function, as
Hydra's own Optuna sweeper example) and its study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "assets" / "toy_app" / "app.py"


def toy(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(APP), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=sweep_dir.parent,
    )


def study(sweep_dir: Path):
    import optuna

    from fusion_tuner.search.study import journal_storage

    name = json.loads((sweep_dir / "search.json").read_text())["study"]
    return optuna.load_study(
        study_name=name, storage=journal_storage(sweep_dir / "optuna-journal.log")
    )
