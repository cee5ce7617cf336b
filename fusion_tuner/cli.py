"""Command-line entry point: ``python -m fusion_tuner [hydra overrides]``.

The one module that touches Hydra's globals. It converts the composed config once into typed
dataclasses, validates it (before any data is touched) and trains into Hydra's output directory.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fusion_tuner.api import CONF_DIR
from fusion_tuner.config import Config, register_configs, validate


# An absolute path: ``python -m fusion_tuner`` would resolve "../conf" as a Python package.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> float:
    from pathlib import Path

    from fusion_tuner.training.run import train

    typed: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(typed)
    metrics = train(typed, Path(HydraConfig.get().runtime.output_dir))
    return float(metrics["val"]["mae"])


def main() -> None:
    """Register the schema, then hand over to Hydra (run or ``-m`` multirun)."""
    register_configs()
    _main()
