"""Runs trained in this process with the Python API, for the session's shared fixtures.

A run trained here has every file a run of ``python -m fusion_tuner`` has, Hydra's
``.hydra/config.yaml`` and ``overrides.yaml`` included (written as Hydra writes them), so the
analysis, predict, export and fine-tune tests read it as they would read a CLI run. What a
training run changes in the process (torch's thread count, deterministic algorithms, the RNGs)
is restored afterwards, so the tests that follow see the process as it was.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from tests.helpers.cli import TINY, tiny_only


def write_hydra_files(run_dir: Path, overrides: list[str]) -> None:
    """``.hydra/config.yaml`` and ``overrides.yaml`` as Hydra writes them for a run."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fusion_tuner.compose import normalize_overrides
    from fusion_tuner.config import register_configs
    from fusion_tuner.paths import conf_dir

    register_configs()
    overrides = normalize_overrides(overrides)
    with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
        cfg = compose(config_name="config", overrides=overrides)
    out = run_dir / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (out / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))


def train_run(run_dir: Path, *overrides: str, tiny: bool = True) -> Path:
    """Train one run into ``run_dir`` in this process (``TINY`` first unless ``tiny=False``)
    and return ``run_dir``; fails the test if the run does not complete."""
    from fusion_tuner import compose_config, train

    ov = [*TINY, *tiny_only(overrides)] if tiny else list(overrides)
    cfg = compose_config(ov)
    write_hydra_files(run_dir, ov)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        metrics = train(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    assert metrics["status"] == "completed", metrics
    return run_dir
