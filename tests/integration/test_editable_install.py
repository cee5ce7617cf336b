"""``pip install -e .`` as a developer does it, used from a directory outside the checkout: Hydra
finds the project's plugins (the Optuna sweeper, the SLURM launcher) and the configs load.

The wheel install is ``.ci/install-check.sh``. Here a fresh venv with ``--system-site-packages``
reuses the installed dependencies (and the machine's pip and setuptools: ``--without-pip``,
``--no-build-isolation``), so the install needs no network (``--no-index``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
SWEEPER = "hydra_plugins.fusion_tuner_optuna.sweeper.OptunaSweeper"
LAUNCHER = "hydra_plugins.fusion_tuner_slurm.launcher.FusionSlurmLauncher"


@pytest.fixture(scope="module")
def editable_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("editable") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    py = venv / "bin" / "python"
    pip = ["pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation"]
    install = subprocess.run(
        [str(py), "-m", *pip, "-e", str(REPO)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return py


def _run(py: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(py), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def test_the_editable_install_imports_this_checkout(editable_python: Path, tmp_path: Path) -> None:
    out = _run(
        editable_python,
        tmp_path,
        "-c",
        "import fusion_tuner; from fusion_tuner.paths import conf_dir; "
        "print(fusion_tuner.__file__); print(conf_dir())",
    )
    assert out.returncode == 0, out.stderr
    module, conf = out.stdout.split()
    assert Path(module) == REPO / "fusion_tuner" / "__init__.py"
    assert Path(conf) == REPO / "conf"


def test_hydra_finds_the_sweeper_from_another_directory(
    editable_python: Path, tmp_path: Path
) -> None:
    out = _run(editable_python, tmp_path, "-m", "fusion_tuner", "+search=tier1", "--cfg", "hydra")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"_target_: {SWEEPER}" in out.stdout


def test_hydra_finds_the_slurm_launcher_from_another_directory(
    editable_python: Path, tmp_path: Path
) -> None:
    out = _run(
        editable_python,
        tmp_path,
        "-m",
        "fusion_tuner",
        "hydra/launcher=slurm_cpu",
        "--cfg",
        "hydra",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"_target_: {LAUNCHER}" in out.stdout
    # the preset's own values (conf/hydra/launcher/slurm_cpu.yaml) over the plugin's defaults
    assert "timeout_min: 720" in out.stdout
    assert "gpus_per_task: null" in out.stdout


def test_the_configs_compose_from_another_directory(editable_python: Path, tmp_path: Path) -> None:
    job = _run(editable_python, tmp_path, "-m", "fusion_tuner", "--cfg", "job")
    assert job.returncode == 0, job.stderr[-3000:]
    assert "experiment_name: baseline" in job.stdout
