"""Hydra's own launcher conformance suites (``hydra.test_utils.launcher_common_tests``) against
the SLURM launcher ``fusion_slurm`` on the live test cluster, as hydra-submitit-launcher runs
them against ``submitit_local``: every job of every sweep is a real SLURM job.

``LauncherTestSuite`` sweeps an in-process task (1 and 2 jobs, strict keys, sweeping groups,
custom resolvers ...); ``IntegrationTestSuite`` writes small Hydra apps into a temporary folder
and runs them with ``-m`` (task names, sweep dirs and subdirs, ``override_dirname``,
``to_absolute_path``). The launcher suite runs twice: with small resources (the cluster has 2
cores, no GPUs) and with no launcher overrides at all (the plugin's own defaults).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.fusion_tuner_slurm.launcher import FusionSlurmLauncher

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]

# one core and a little memory per job; short progress lines in the logs
SMALL = {
    "cpus_per_task": 1,
    "mem_gb": 1,
    "timeout_min": 5,
    "progress_interval_s": 5,
}


@pytest.fixture(autouse=True)
def _this_checkout_in_the_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps the suites start, and the SLURM jobs (sbatch exports the environment), import
    the plugins of this checkout, whatever is installed."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{path}" if path else str(REPO))


@pytest.fixture(autouse=True)
def _hydra_version_base_as_the_suites_expect() -> Iterator[None]:
    """The suites' apps declare no version_base, so Hydra's 1.1 defaults apply (the job changes
    into its output directory). Earlier tests of this process composed with version_base="1.3",
    which Hydra keeps in a singleton that the launcher hands to every job: start each test with
    it unset, as a fresh process would, and put it back after."""
    from hydra.version import _UNSPECIFIED_, VersionBase

    base = VersionBase.instance()
    before = base.version_base
    base.version_base = _UNSPECIFIED_
    yield
    base.version_base = before


def test_discovery() -> None:
    assert FusionSlurmLauncher.__name__ in [
        x.__name__ for x in Plugins.instance().discover(Launcher)
    ]


@pytest.mark.parametrize(
    ("launcher_name", "overrides"),
    [
        ("fusion_slurm", [f"hydra.launcher.{k}={v}" for k, v in SMALL.items()]),
        ("fusion_slurm", []),
    ],
    ids=["small", "defaults"],
)
class TestFusionSlurmLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize(
    ("task_launcher_cfg", "extra_flags"),
    [
        (
            {
                "defaults": [
                    {"override hydra/launcher": "fusion_slurm"},
                    {"override hydra/hydra_logging": "hydra_debug"},
                    {"override hydra/job_logging": "disabled"},
                ],
                "hydra": {"launcher": SMALL},
            },
            ["-m"],
        )
    ],
    ids=["small"],
)
class TestFusionSlurmLauncherIntegration(IntegrationTestSuite):
    pass


def test_the_sweeper_runs_the_toy_app_as_job_arrays(tmp_path: Path) -> None:
    """The Optuna sweeper and this launcher together on an app that is not fusion_tuner: 4
    trials in 2 job arrays of 2, each trial in the directory ``t_${hydra.job.num}`` names."""
    from tests.helpers.toy import study, toy

    sweep_dir = tmp_path / "toy"
    out = toy(
        sweep_dir,
        "hydra/launcher=fusion_slurm",
        *(f"hydra.launcher.{k}={v}" for k, v in SMALL.items()),
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweep.subdir=t_${hydra.job.num}",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    trials = study(sweep_dir).trials
    assert [(t.number, t.state.name) for t in trials] == [(n, "COMPLETE") for n in range(4)]
    for t in trials:
        assert t.value == t.params["x"] ** 2 + t.params["y"] ** 2
        assert (sweep_dir / f"t_{t.number}" / "metrics.json").is_file()
    arrays = {p.name.split("_")[0] for p in (sweep_dir / ".submitit").iterdir()}
    arrays = {a for a in arrays if a.isdigit()}  # job folders <array id>_<index>
    assert len(arrays) == 2  # one job array per batch of n_jobs trials
