"""One training run: ``train(cfg, run_dir)`` writes every file of a run directory (see
:mod:`fusion_tuner.rundir`) and returns its ``metrics.json`` content.

Re-running into a directory with ``last.pt`` resumes exactly; into a completed run of the same
config it only reports that the run is complete. A failing run records ``status: failed`` and
the error in ``metrics.json``, the traceback in ``train.log``, and re-raises.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from fusion_tuner.config import Config, config_hash, validate
from fusion_tuner.errors import CheckpointError
from fusion_tuner.rundir import COMPLETED, FAILED, RUNNING, RunDir
from fusion_tuner.training.checkpoint import config_to_dict
from fusion_tuner.training.console import RunLog
from fusion_tuner.training.loggers import MetricLogger, NullLogger, build_logger

log = logging.getLogger("fusion_tuner")

ATTEMPT_ACTIONS = {FAILED: "rerun after failure", RUNNING: "resumed after interruption"}


def _final_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the experiment tracker keeps as the run's summary."""
    out: dict[str, Any] = {
        f"{s}/{k}": metrics[s][k] for s in ("train", "val", "test") for k in ("mae", "rmse", "r2")
    }
    return out | {k: metrics[k] for k in ("gap_ratio", "best_epoch", "stop_reason")}


def train(cfg: Config, run_dir: str | Path, sweep: str | None = None) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its ``metrics.json`` content.

    Args:
        cfg: the run's config.
        run_dir: the run directory (created if needed).
        sweep: the multirun this run belongs to (its W&B group unless ``logger.group`` is set).
    """
    from fusion_tuner.training.trainer import Trainer

    files = RunDir(run_dir)
    files.path.mkdir(parents=True, exist_ok=True)
    digest = config_hash(cfg)
    with RunLog(files.log):
        previous = files.read_metrics()
        if previous.get("status") == COMPLETED:
            if previous.get("config_hash") != digest:
                raise CheckpointError(
                    f"{files.path} holds a completed run of a different config "
                    f"({previous.get('config_hash')} != {digest}); use a new run directory"
                )
            log.info("run in %s is already complete (config %s): nothing to do", files.path, digest)
            return previous
        action = ATTEMPT_ACTIONS.get(previous.get("status", ""), "fresh")
        log.info("run %s: %s", files.path.name, action)
        attempts = [
            *previous.get("attempts", []),
            {"action": action, "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
        ]
        base = {
            "status": RUNNING,
            "experiment": cfg.experiment_name,
            "seed": cfg.random_seed,
            "config_hash": digest,
            "budget": cfg.budget.name,
            "pid": os.getpid(),
            "attempts": attempts,
        }
        files.write_metrics(base)
        logger: MetricLogger = NullLogger()
        failed, start = True, time.perf_counter()
        try:
            validate(cfg)
            defaults = {
                "group": sweep or cfg.experiment_name,
                "job_type": cfg.experiment_name,
                "name": f"{cfg.experiment_name}-seed{cfg.random_seed}",
            }
            logger = build_logger(cfg.logger, files.path, config_to_dict(cfg), defaults)
            trainer = Trainer.from_config(cfg, files.path, logger)
            trainer.fit()
            metrics = trainer.finish(time.perf_counter() - start) | {"attempts": attempts}
            files.write_metrics(metrics)
            logger.summary(_final_summary(metrics))
            log.info(
                "done: best epoch %d, val MAE %.4f, test MAE %.4f, gap ratio %.2f (%s)",
                metrics["best_epoch"],
                metrics["val"]["mae"],
                metrics["test"]["mae"],
                metrics["gap_ratio"],
                metrics["stop_reason"],
            )
            failed = False
            return metrics
        except BaseException as exc:
            log.error("run failed:\n%s", traceback.format_exc())
            files.write_metrics(base | {"status": FAILED, "error": f"{type(exc).__name__}: {exc}"})
            raise
        finally:
            logger.finish(failed=failed)
