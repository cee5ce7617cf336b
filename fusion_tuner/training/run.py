"""One training run: ``train(cfg, run_dir)`` writes every file of a run directory (see
:mod:`fusion_tuner.rundir`) and returns its ``metrics.json`` content.

The run owns its directory for its whole life (:class:`~fusion_tuner.rundir.RunLock`); a second
live process is refused. Re-running into a directory with ``last.pt`` resumes exactly; into a
completed run of the same config it only reports that the run is complete. A failing run
records ``status: failed`` and the error in ``metrics.json``, the traceback in ``train.log``,
and re-raises; SIGINT and SIGTERM (what SLURM sends at a time limit, and ``scancel``) record
``status: interrupted`` with the signal, keep ``last.pt``, and exit non-zero.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusion_tuner.config import Config, config_hash, validate
from fusion_tuner.errors import CheckpointError
from fusion_tuner.io import remove_stale_temp_files
from fusion_tuner.rundir import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunDir, RunLock
from fusion_tuner.search.pruning import TrialReporter
from fusion_tuner.training.checkpoint import config_to_dict
from fusion_tuner.training.console import RunLog
from fusion_tuner.training.loggers import MetricLogger, NullLogger, build_logger

log = logging.getLogger("fusion_tuner")

ATTEMPT_ACTIONS = {
    FAILED: "rerun after failure",
    RUNNING: "resumed after interruption",
    INTERRUPTED: "resumed after interruption",
}


class Interrupted(BaseException):
    """Raised in the training process by SIGTERM (SIGINT raises KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`Interrupted` while a run trains (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _final_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the experiment tracker keeps as the run's summary."""
    out: dict[str, Any] = {
        f"{s}/{k}": metrics[s][k] for s in ("train", "val", "test") for k in ("mae", "rmse", "r2")
    }
    return out | {k: metrics[k] for k in ("gap_ratio", "best_epoch", "stop_reason")}


def _prepare(files: RunDir, cfg: Config) -> None:
    """Clean what killed processes left behind; honour ``trainer.start_over``."""
    stale = remove_stale_temp_files(files.path)
    if stale:
        log.info(
            "removed %d partial file(s) of interrupted writes: %s",
            len(stale),
            ", ".join(p.name for p in stale),
        )
    if cfg.trainer.start_over:
        for path in (files.last_checkpoint, files.previous_last_checkpoint, files.best_checkpoint):
            if path.exists():
                log.warning("trainer.start_over=true: removing %s", path)
                path.unlink()


def _tidy(files: RunDir, cfg: Config) -> None:
    """After completion only ``best_model.pt`` is needed (unless asked to keep ``last.pt``)."""
    if cfg.trainer.keep_last_checkpoint:
        return
    for path in (files.last_checkpoint, files.previous_last_checkpoint):
        path.unlink(missing_ok=True)


def train(cfg: Config, run_dir: str | Path, sweep: str | None = None) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its ``metrics.json`` content.

    Args:
        cfg: the run's config.
        run_dir: the run directory (created if needed).
        sweep: the multirun this run belongs to (its W&B group unless ``logger.group`` is set).
    """
    files = RunDir(run_dir)
    with RunLock(files), RunLog(files.log), _sigterm_interrupts():
        return _train_locked(cfg, files, sweep)


def _train_locked(cfg: Config, files: RunDir, sweep: str | None) -> dict[str, Any]:
    from fusion_tuner.training.trainer import Trainer

    digest = config_hash(cfg)
    previous = files.read_metrics()
    if previous.get("status") == COMPLETED:
        if previous.get("config_hash") != digest:
            raise CheckpointError(
                f"{files.path} holds a completed run of a different config "
                f"({previous.get('config_hash')} != {digest}); use a new run directory"
            )
        log.info("run in %s is already complete (config %s): nothing to do", files.path, digest)
        return previous
    _prepare(files, cfg)
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
    if cfg.trial.number is not None:  # a trial of an Optuna search (fusion_tuner.search)
        base["trial"] = {"number": cfg.trial.number, "study": cfg.trial.study}
    files.write_metrics(base)
    logger: MetricLogger = NullLogger()
    failed, start = True, time.perf_counter()
    try:
        validate(cfg)
        # a search trial reports validation MAE to its study every epoch and may be pruned
        reporter = TrialReporter.from_config(cfg.trial)
        defaults = {
            "group": sweep or cfg.experiment_name,
            "job_type": cfg.experiment_name,
            "name": f"{cfg.experiment_name}-seed{cfg.random_seed}",
        }
        tracked = config_to_dict(cfg)
        if reporter is not None:
            defaults["name"] = files.path.name  # trial-0007
            tracked["trial"] |= {"params": reporter.params}
        logger = build_logger(cfg.logger, files.path, tracked, defaults)
        trainer = Trainer.from_config(cfg, files.path, logger)
        if reporter is not None:
            trainer.epoch_hooks.append(reporter)
        trainer.fit()
        metrics = trainer.finish(time.perf_counter() - start) | {"attempts": attempts}
        if reporter is not None:
            metrics["trial"] = reporter.record()
        files.write_metrics(metrics)
        _tidy(files, cfg)
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
    except (KeyboardInterrupt, Interrupted) as exc:
        reason = str(exc) if isinstance(exc, Interrupted) else "interrupted by SIGINT"
        log.error(
            "run %s: %s; last.pt is kept, rerun the same command to resume", files.path.name, reason
        )
        files.write_metrics(base | {"status": INTERRUPTED, "reason": reason})
        if isinstance(exc, Interrupted):
            raise SystemExit(128 + exc.signum) from None
        raise
    except BaseException as exc:
        log.error("run failed:\n%s", traceback.format_exc())
        files.write_metrics(base | {"status": FAILED, "error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        logger.finish(failed=failed)
