"""A toy task for the Optuna sweeper (``hydra/sweeper=fusion_optuna``): the sphere function
x^2 + y^2, as Hydra's own Optuna sweeper example. It follows the sweeper's contract: its config
declares ``random_seed`` and ``trial.{number,study,storage}``, and each run writes
``metrics.json`` into its run directory with the objective as ``val.mae`` (what
``fusion_tuner.search.loop.read_outcome`` reads).

``y=-1`` fails the run (status ``failed``), to show how a failed trial is told."""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def _write(run_dir: Path, metrics: dict) -> None:
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics))
    os.replace(tmp, run_dir / "metrics.json")


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # the trial's values as the run's config holds them: a run of other values is never taken
    # for this trial's result
    trial = {
        "number": cfg.trial.number,
        "study": cfg.trial.study,
        "params": {"x": cfg.x, "y": cfg.y},
    }
    if cfg.y == -1:
        _write(
            run_dir, {"status": "failed", "error": "ValueError: y=-1 is refused", "trial": trial}
        )
        return float("nan")
    value = float(cfg.x) ** 2 + float(cfg.y) ** 2
    _write(run_dir, {"status": "completed", "val": {"mae": value}, "trial": trial})
    return value


if __name__ == "__main__":
    main()
