"""One training run: ``train(cfg, run_dir)`` writes every file of a run directory (see
:mod:`fusion_tuner.rundir`) and returns its ``metrics.json`` content.

The run owns its directory for its whole life (:class:`~fusion_tuner.rundir.RunLock`); a second
live process is refused. Re-running into a directory with ``last.pt`` resumes exactly; into a
completed run of the same config it only reports that the run is complete. A failing run
records ``status: failed`` and the error in ``metrics.json``, the traceback in ``train.log``,
and re-raises; SIGINT and SIGTERM (what SLURM sends at a time limit, and ``scancel``) record
``status: interrupted`` with the signal, keep ``last.pt``, and exit non-zero.

On several ranks (:mod:`fusion_tuner.training.distributed`): with ``trainer.devices=N`` this
process keeps the lock, the status and the attempts, and spawns N ranks that train and write the
run's files (rank 0); under torchrun or srun every rank calls :func:`train`, rank 0 owns the
directory as a plain run does and tells the others when (and whether) to start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fusion_tuner.checkpoint import config_to_dict
from fusion_tuner.config import Config, config_hash, validate
from fusion_tuner.errors import USER_ERRORS, RunError, RunRefused, full_error, mark_reported
from fusion_tuner.io import remove_stale_temp_files
from fusion_tuner.launch import Launch, from_env
from fusion_tuner.metrics import skill_words
from fusion_tuner.rerun import resume_command
from fusion_tuner.rundir import COMPLETED, FAILED, INTERRUPTED, RUNNING, RunDir, RunLock
from fusion_tuner.search.pruning import TrialReporter
from fusion_tuner.training import distributed
from fusion_tuner.training.console import RunLog, to_run_log
from fusion_tuner.training.distributed import SINGLE, Dist
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


def _interruption(exc: BaseException) -> KeyboardInterrupt | Interrupted | None:
    """The SIGINT/SIGTERM behind ``exc``: itself, or one it was raised from or while handling.

    A signal handler's exception can surface wrapped: one raised while a C extension module
    initialises (matplotlib's, at a run's first plot) becomes ``ImportError: initialization
    failed`` whose cause is the :class:`Interrupted`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt | Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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


# Called with the run directory once this process owns it and has accepted the config (not
# for a refused run, nor for a run already complete): the CLI writes Hydra's ``.hydra/`` then.
OnAccept = Callable[[RunDir], None]


def train(
    cfg: Config, run_dir: str | Path, sweep: str | None = None, on_accept: OnAccept | None = None
) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its ``metrics.json`` content.

    Args:
        cfg: the run's config.
        run_dir: the run directory (created if needed).
        sweep: the multirun this run belongs to (its W&B group unless ``logger.group`` is set).
        on_accept: called once the run owns ``run_dir`` and records this attempt (never when
            it is refused), before training starts.
    """
    launch = from_env()
    if launch is not None:
        return _train_as_rank(cfg, RunDir(run_dir), sweep, launch, on_accept)
    files = RunDir(run_dir)
    with RunLock(files), RunLog(files.log), _sigterm_interrupts():
        return _train_locked(cfg, files, sweep, on_accept=on_accept)


# What rank 0 tells the other ranks of a torchrun/srun run once it owns the directory.
GO, DONE, REFUSED = "go", "done", "refused"


def _open(cfg: Config, files: RunDir) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read what the directory holds; unless the run is complete, record this attempt.

    Returns:
        ``(previous metrics, None)`` for a run already complete with this config, else
        ``(previous metrics, the "running" metrics just written)``.

    Raises:
        RunRefused: the directory holds a completed run of another config, or an unfinished
            one that this config cannot resume (nothing is written then).
    """
    digest = config_hash(cfg)
    previous = files.read_metrics()
    if previous.get("status") == COMPLETED:
        if previous.get("config_hash") != digest:
            raise RunRefused(
                f"{files.path} holds a completed run of a different config "
                f"({previous.get('config_hash')} != {digest}); use a new run directory"
            )
        log.info("run in %s is already complete (config %s): nothing to do", files.path, digest)
        return previous, None
    resumable = files.last_checkpoint.is_file() or files.previous_last_checkpoint.is_file()
    old = previous.get("config_hash")
    if resumable and old is not None and old != digest and not cfg.trainer.start_over:
        raise RunRefused(
            f"{files.path} holds an unfinished run of a different config ({old} != {digest}); "
            "rerun it with its own overrides to resume it, add trainer.start_over=true to "
            "discard it, or use a new run directory"
        )
    _prepare(files, cfg)
    action = ATTEMPT_ACTIONS.get(previous.get("status", ""), "fresh")
    log.info("run %s: %s", files.path.name, action)
    earlier = [dict(a) for a in previous.get("attempts", []) if isinstance(a, dict)]
    if previous.get("status") == RUNNING:  # this process holds the lock: its owner is gone
        stale = (
            f"interrupted: metrics.json still said 'running' but no live process owned the run "
            f"(pid {previous.get('pid', '?')}); it was killed, or could not record its end "
            "(a full disk?)"
        )
        log.warning("run %s: the previous attempt was %s", files.path.name, stale)
        if earlier:
            earlier[-1].setdefault("ended", stale)
    attempts = [*earlier, {"action": action, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}]
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
    return previous, base


def _train_locked(
    cfg: Config,
    files: RunDir,
    sweep: str | None,
    dist: Dist = SINGLE,
    on_accept: OnAccept | None = None,
) -> dict[str, Any]:
    """The run, in the process that owns its directory: a plain run, or rank 0 of a run that
    torchrun/srun started (its other ranks wait in :func:`_train_as_rank` for what rank 0
    ``share``s: start, already done, or refused)."""
    try:
        previous, base = _open(cfg, files)
    except BaseException as exc:
        dist.share((REFUSED, f"{type(exc).__name__}: {exc}"))
        raise
    if base is None:
        dist.share((DONE, previous))
        return previous
    started, start = False, time.perf_counter()
    try:
        if on_accept is not None:
            on_accept(files)
        validate(cfg)
        dist.share((GO, None))
        started = True
        return _train_and_record(cfg, files, sweep, dist, base, start)
    except BaseException as exc:
        if not started:
            dist.share((REFUSED, f"{type(exc).__name__}: {exc}"))
        interrupt = _interruption(exc)
        if interrupt is not None:
            _record_interruption(interrupt, files, base)
            if isinstance(interrupt, Interrupted):
                raise SystemExit(128 + interrupt.signum) from None
            if interrupt is exc:
                raise
            raise interrupt from None
        _record_failure(exc, files, base)
        raise


def _train_and_record(
    cfg: Config, files: RunDir, sweep: str | None, dist: Dist, base: dict[str, Any], start: float
) -> dict[str, Any]:
    """Train (here, or on ``trainer.devices`` spawned ranks), write the final ``metrics.json``,
    tidy the checkpoints and log the outcome; returns the metrics."""
    if cfg.trainer.devices > 1 and not dist.active:
        metrics = _spawn_ranks(cfg, files, sweep)
    else:
        metrics = _fit(dist, cfg, files, sweep, start)
    metrics = metrics | {
        "wall_time_s": time.perf_counter() - start,
        "attempts": base["attempts"],
    }
    files.write_metrics(metrics)
    _tidy(files, cfg)
    log.info(
        "done: best epoch %d, val MAE %.4f, test MAE %.4f, gap ratio %.2f (%s); %s",
        metrics["best_epoch"],
        metrics["val"]["mae"],
        metrics["test"]["mae"],
        metrics["gap_ratio"],
        metrics["stop_reason"],
        skill_words(metrics),
    )
    return metrics


def _record_interruption(
    interrupt: KeyboardInterrupt | Interrupted, files: RunDir, base: dict[str, Any]
) -> None:
    """Log how to resume, record ``status: interrupted`` with the signal, and mark the
    interruption reported."""
    reason = str(interrupt) if isinstance(interrupt, Interrupted) else "interrupted by SIGINT"
    log.error(
        "run %s: %s; last.pt is kept; to resume, rerun %s",
        files.path.name,
        reason,
        resume_command(files.path),
    )
    files.write_metrics(base | {"status": INTERRUPTED, "reason": reason})
    mark_reported(interrupt)


def _record_failure(exc: BaseException, files: RunDir, base: dict[str, Any]) -> None:
    """Log the error (its traceback, unless a user error's message says it all) and record
    ``status: failed``; called while ``exc`` is being handled."""
    if isinstance(exc, distributed.RankFailed) and exc.rank not in (None, 0):
        # only rank 0 writes train.log, and it may be stopped before failing in its turn
        log.error("run failed: %s\nrank %d's %s", exc, exc.rank, exc.rank_traceback)
    elif isinstance(exc, distributed.RankFailed):
        where = " (its traceback is in the log above)" if exc.rank == 0 else ""
        log.error("run failed: %s%s", exc, where)
    elif isinstance(exc, USER_ERRORS) and not full_error():
        # the message names what to fix; the CLI exits 2 without a traceback
        log.error("run failed: %s", exc)
        to_run_log("%s", traceback.format_exc(), level=logging.ERROR)  # train.log only
        mark_reported(exc)
    else:
        log.error("run failed:\n%s", traceback.format_exc())
    files.write_metrics(base | {"status": FAILED, "error": f"{type(exc).__name__}: {exc}"})


def _fit(dist: Dist, cfg: Config, files: RunDir, sweep: str | None, start: float) -> dict[str, Any]:
    """Build the Trainer, fit and finish; return the final metrics (without ``attempts``).
    On several ranks every rank runs this; rank 0 alone has the experiment tracker."""
    from fusion_tuner.training.trainer import Trainer

    logger: MetricLogger = NullLogger()
    failed = True
    try:
        reporter = None
        if dist.is_main:
            # a search trial reports validation MAE to its study every epoch and may be pruned
            # (rank 0 reports; the Trainer shares its decision with the other ranks)
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
        trainer = Trainer.from_config(cfg, files.path, logger, dist)
        if reporter is not None:
            trainer.epoch_hooks.append(reporter)
        trainer.fit()
        metrics = trainer.finish(time.perf_counter() - start)
        if reporter is not None:
            metrics["trial"] = reporter.record()
        logger.summary(_final_summary(metrics))
        failed = False
        return metrics
    finally:
        logger.finish(failed=failed)


# ------------------------------------------------------------------------ several ranks
def _spawn_ranks(cfg: Config, files: RunDir, sweep: str | None) -> dict[str, Any]:
    """``trainer.devices`` local ranks train the run; rank 0's final metrics come back."""
    device = distributed.check_local_devices(cfg.trainer.devices, cfg.trainer.device)
    log.info(
        "training on %d %s processes (DDP, %s), global batch %d",
        cfg.trainer.devices,
        device.type.upper() if device.type == "cuda" else "CPU",
        distributed.backend_for(device),
        cfg.batch.batch_size,
    )
    return distributed.spawn(
        _spawned_rank,
        cfg.trainer.devices,
        (cfg, str(files.path), sweep),
        distributed.backend_for(device),
        on_interrupt=Interrupted,
    )


def _spawned_rank(dist: Dist, cfg: Config, run_dir: str, sweep: str | None) -> dict[str, Any]:
    """One spawned rank (a fresh process): log like the parent, train, return the metrics."""
    import torch

    from fusion_tuner.runtime import resolve_device

    files = RunDir(run_dir)
    if cfg.trainer.num_threads is None and resolve_device(cfg.trainer.device).type == "cpu":
        # the ranks share this machine's cores (torchrun sets OMP_NUM_THREADS=1 for the same)
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // dist.world))
    log_file = RunLog(files.log) if dist.is_main else contextlib.nullcontext()
    with distributed.rank_logging(dist, console=True), log_file, _sigterm_interrupts():
        try:
            return _fit(dist, cfg, files, sweep, time.perf_counter())
        except BaseException as exc:
            interrupt = _interruption(exc)
            if isinstance(interrupt, Interrupted):  # the parent records it, from this exit status
                raise SystemExit(128 + interrupt.signum) from None
            if interrupt is not None:
                raise interrupt from None
            log.error("rank %d failed:\n%s", dist.rank, traceback.format_exc())
            raise


def _train_as_rank(
    cfg: Config, files: RunDir, sweep: str | None, launch: Launch, on_accept: OnAccept | None
) -> dict[str, Any]:
    """This process is one rank of a run that torchrun or srun started: rank 0 owns the run
    directory (lock, status, files), the others train beside it."""
    world = distributed.world_size(cfg.trainer.devices, launch)
    cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, devices=world))
    device = distributed.rank_device(cfg.trainer.device, distributed.dist_of(launch))
    dist = distributed.init(launch, distributed.backend_for(device))
    try:
        # every rank's Hydra made its own run directory name; rank 0's is the run's
        files = RunDir(dist.share(str(files.path)))
        with distributed.rank_logging(dist, console=False):
            if dist.is_main:
                with RunLock(files), RunLog(files.log), _sigterm_interrupts():
                    return _train_locked(cfg, files, sweep, dist, on_accept)
            with _sigterm_interrupts():
                kind, payload = dist.share()
                if kind == DONE:
                    return payload
                if kind == REFUSED:
                    raise RunError(f"rank 0 did not start the run: {payload}")
                return _fit(dist, cfg, files, sweep, time.perf_counter())
    finally:
        distributed.shutdown()
