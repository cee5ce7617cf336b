"""Metric loggers beside the plain files every run writes: none, or Weights & Biases."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from fusion_tuner.config import LoggerConfig

log = logging.getLogger(__name__)


class MetricLogger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def summary(self, metrics: dict[str, Any]) -> None: ...

    def finish(self, failed: bool = False) -> None: ...


class NullLogger:
    """Logs nothing (``logger=none``); the run's files still hold everything."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, metrics: dict[str, Any]) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


def resolve_wandb_mode(mode: str) -> str:
    """``auto``: online when an API key is configured (env or ~/.netrc), else offline."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "online"
    return "offline"


class WandbLogger:
    """One W&B run per training run, always finished (also when training raises), so runs of a
    multirun in one process never log into each other.

    Args:
        cfg (LoggerConfig): project, entity, group, job type, name, tags, mode.
        run_dir (Path): where W&B writes its files (``<run_dir>/wandb``).
        config (dict): the whole resolved config, logged as the run's config.
        defaults (dict): fallbacks for ``group``/``job_type``/``name`` (sweep and experiment).
    """

    def __init__(
        self, cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], defaults: dict[str, str]
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError(
                "logger=wandb needs the wandb package (pip install wandb), or use logger=none"
            ) from exc
        self.mode = resolve_wandb_mode(cfg.mode)
        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group or defaults.get("group"),
            job_type=cfg.job_type or defaults.get("job_type"),
            name=cfg.name or defaults.get("name"),
            tags=list(cfg.tags),
            config=config,
            dir=str(run_dir),
            mode=self.mode,
            reinit="finish_previous",
        )
        log.info("W&B run %s (mode %s) in %s", self.run.id, self.mode, run_dir / "wandb")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            self.run.summary[key] = value

    def finish(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def build_logger(
    cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], defaults: dict[str, str]
) -> MetricLogger:
    if cfg.backend == "wandb":
        return WandbLogger(cfg, run_dir, config, defaults)
    return NullLogger()
