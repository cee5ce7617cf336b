"""The SLURM launcher plugin: Hydra finds it, the presets compose, and its own fields never
reach submitit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher

from fusion_tuner.config import register_configs
from fusion_tuner.paths import CONF_DIR
from hydra_plugins.fusion_tuner_slurm.launcher import FusionSlurmLauncher, _labels


def test_hydra_discovers_the_plugin() -> None:
    names = [f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Launcher)]
    assert "hydra_plugins.fusion_tuner_slurm.launcher.FusionSlurmLauncher" in names


def launcher_cfg(*overrides: str) -> dict:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    return dict(cfg.hydra.launcher)


def test_gpu_and_cpu_presets() -> None:
    gpu = launcher_cfg("hydra/launcher=slurm")
    cpu = launcher_cfg("hydra/launcher=slurm_cpu")
    target = "hydra_plugins.fusion_tuner_slurm.launcher.FusionSlurmLauncher"
    assert gpu["_target_"] == cpu["_target_"] == target
    assert (gpu["gpus_per_task"], gpu["cpus_per_task"], gpu["mem_gb"]) == (1, 8, 64)
    assert (cpu["gpus_per_task"], cpu["cpus_per_task"], cpu["mem_gb"]) == (None, 2, 8)
    for c in (gpu, cpu):
        assert (c["preflight"], c["progress_interval_s"], c["keep_waiting"], c["detach"]) == (
            True,
            60.0,
            False,
            False,
        )
    assert launcher_cfg("hydra/launcher=slurm_cpu", "hydra.launcher.detach=true")["detach"] is True


def test_own_fields_never_reach_submitit(tmp_path: Path) -> None:
    params = launcher_cfg("hydra/launcher=slurm_cpu", "hydra.launcher.progress_interval_s=2")
    params = {k: v for k, v in params.items() if k != "_target_"}
    params["submitit_folder"] = str(tmp_path / "%j")
    launcher = FusionSlurmLauncher(**params)
    assert launcher.progress_interval_s == 2.0 and launcher.preflight is True
    assert not {"preflight", "progress_interval_s", "keep_waiting", "detach"} & set(launcher.params)
    executor = launcher._executor()  # submitit rejects any parameter it does not know
    assert executor.parameters["cpus_per_task"] == 2 and executor.parameters["mem"] == "8GB"


def test_progress_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"hydra.launcher.progress_interval_s=0: must be > 0"):
        FusionSlurmLauncher(progress_interval_s=0, submitit_folder="x")


def test_run_labels_show_what_differs() -> None:
    jobs = [["experiment=baseline", "budget=quick"], ["experiment=e06_lower_lr", "budget=quick"]]
    assert _labels(jobs) == ["experiment=baseline", "experiment=e06_lower_lr"]
    assert _labels([["budget=quick"]]) == ["budget=quick"]
