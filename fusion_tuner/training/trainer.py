"""The Trainer: everything one run needs, built up front; the epoch loop; the final evaluation.

``Trainer.from_config(cfg, run_dir)`` builds data, model, optimizer, schedule, early stopping
and logger, and resumes from the run's ``last.pt`` when there is one. ``fit()`` runs the epochs;
``finish()`` evaluates the best model on every split and returns the ``metrics.json`` content.

On several ranks (a :class:`~fusion_tuner.training.distributed.Dist` with ``world > 1``) every
rank builds the same Trainer, trains its slices of each global batch through DDP and gathers
every evaluation, so all ranks take the same decisions; only rank 0 writes files and logs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fusion_tuner import __version__
from fusion_tuner import checkpoint as ckpt_io
from fusion_tuner.config import (
    Config,
    SchedulerConfig,
    config_hash,
    inert_text_keys,
    max_epochs,
    modality,
    text_learning_rate,
)
from fusion_tuner.data.module import CrystalDataModule
from fusion_tuner.errors import CheckpointError, ConfigError, Diverged
from fusion_tuner.io import atomic_write_dir, stable_hash
from fusion_tuner.metrics import gap_ratio, learned_nothing, skill_metrics
from fusion_tuner.models.builders import build_model
from fusion_tuner.models.property import FusionPropertyModel
from fusion_tuner.provenance import git_revision
from fusion_tuner.rundir import COMPLETED, Run, RunDir
from fusion_tuner.runtime import seed_everything
from fusion_tuner.training import finetune
from fusion_tuner.training.console import BatchProgress, progress, to_run_log
from fusion_tuner.training.distributed import SINGLE, Dist, epoch_seed, rank_device
from fusion_tuner.training.early_stopping import EarlyStopping
from fusion_tuner.training.epoch import HISTORY_COLUMNS, EpochRecord, train_eval_ids
from fusion_tuner.training.loggers import MetricLogger, NullLogger
from fusion_tuner.training.loop import evaluate, train_epoch
from fusion_tuner.training.optim import build_optimizer, build_scheduler
from fusion_tuner.training.plots import plot_curves
from fusion_tuner.training.sharding import sharded_loader
from fusion_tuner.training.text_store import prepare_text_states

log = logging.getLogger("fusion_tuner")


# what last.pt holds about the progress besides the states of the model and its optimizer
_PROGRESS_KEYS = (
    "epoch",
    "history",
    "best_val_mae",
    "best_epoch",
    "train_seconds",
    "train_crystals",
)


@dataclass
class Progress:
    """Where training stands; saved in ``last.pt`` and restored on resume."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_mae: float = math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    train_crystals: int = 0
    stop_reason: str | None = None

    @property
    def next_epoch(self) -> int:
        return len(self.history) + 1


def _warmup_steps(cfg: Config, epochs: int, steps: int) -> int:
    """``scheduler.warmup_steps``, capped at ``budget.max_warmup_fraction`` of the run; with
    ``scheduler.pct_start`` set (one-cycle), that fraction of the run's steps instead."""
    if cfg.scheduler.scheduler == "onecycle" and cfg.scheduler.pct_start is not None:
        return int(cfg.scheduler.pct_start * epochs * steps)
    frac, warmup = cfg.budget.max_warmup_fraction, cfg.scheduler.warmup_steps
    if frac is not None and warmup > frac * epochs * steps:
        capped = int(frac * epochs * steps)
        log.warning(
            "budget=%s caps warmup_steps %d -> %d (%.0f%% of the run's %d steps)",
            cfg.budget.name,
            warmup,
            capped,
            100 * frac,
            epochs * steps,
        )
        return capped
    return warmup


def check_compile_toolchain(device: torch.device) -> None:
    """``trainer.compile=true`` on a CPU needs the C++ compiler inductor builds its kernels
    with; refuse before any data work when there is none (torch would fail at the first batch
    with a long traceback)."""
    if device.type != "cpu":
        return
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler, or a compiler that cannot be run
        raise ConfigError(
            [
                f"trainer.compile=true: torch.compile needs a C++ compiler on a CPU and found none "
                f"({type(exc).__name__}); install one (Debian/Ubuntu: apt-get install g++, or set "
                "CXX) or set trainer.compile=false"
            ]
        ) from exc


def _own_tokenizer(files: RunDir) -> Any:
    """The tokenizer a resumable run saved when it started (None for a fresh run)."""
    resumable = files.last_checkpoint.is_file() or files.previous_last_checkpoint.is_file()
    if not (resumable and (files.tokenizer / "tokenizer_config.json").is_file()):
        return None
    from transformers import AutoTokenizer

    log.info("resuming with the run's own tokenizer (%s)", files.tokenizer)
    return AutoTokenizer.from_pretrained(str(files.tokenizer))


def _setup_data(cfg: Config, files: RunDir, dist: Dist, tokenizer: Any) -> CrystalDataModule:
    """The run's data; rank 0 writes its split, data report and tokenizer.

    Ranks set up concurrently (the cache builds each entry once under a file lock, and a
    tokenizer is the cache's or the run's own), then check that they agree before rank 0
    writes: that check is also the barrier that keeps rank 0 from replacing ``tokenizer/``
    while another rank still reads it.
    """
    dm = CrystalDataModule(cfg).setup(tokenizer=tokenizer)
    if dist.active:
        views = dist.all_gather_object((dm.info.tokenizer_id, stable_hash(dm.splits)))
        if any(v != views[0] for v in views):
            raise RuntimeError(
                f"the {dist.world} ranks of this run built different data (tokenizer, split): "
                f"{views}; rerun, and report this if it happens again"
            )
    if dist.is_main:
        files.write_split(dm.splits)
        files.write_data_report(dm.report)
        if dm.tokenizer is not None:  # graph-only runs (text=none) have none
            atomic_write_dir(files.tokenizer, lambda tmp: dm.tokenizer.save_pretrained(str(tmp)))
    return dm


def _runtime_device(cfg: Config, dist: Dist) -> torch.device:
    """Seed, threads and determinism of ``cfg.trainer``; this rank's device (with the compile
    toolchain checked when ``trainer.compile``)."""
    seed_everything(cfg.random_seed)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    torch.use_deterministic_algorithms(cfg.trainer.deterministic, warn_only=True)
    device = rank_device(cfg.trainer.device, dist)
    if cfg.trainer.compile:
        check_compile_toolchain(device)
    return device


def _build_run_model(
    cfg: Config, dm: CrystalDataModule, device: torch.device, source: Run | None
) -> tuple[FusionPropertyModel, dict[str, Any] | None]:
    """The model on ``device``: built, loaded from ``model.init_from``'s run (``source``) when
    given, compiled when asked, with the new training split's target normaliser; returns it
    and what was loaded (None for fresh weights)."""
    model = build_model(cfg, dm.info).to(device)
    init = (
        finetune.load_matching(model, source, cfg.model.init_scope, cfg.model.init_min_loaded)
        if source
        else None
    )
    if cfg.trainer.compile:  # after the weights are loaded; the state_dict keeps its names
        model.compile_graph_encoder()
    y = dm.datasets["train"].targets  # the normaliser is always the new training split's
    if cfg.trainer.target_scale == "raw":  # the model learns y in its units (upstream)
        model.set_normalizer(0.0, 1.0)
    else:
        model.set_normalizer(float(y.mean()), float(y.std()) if len(y) > 1 else 1.0)
    return model, init


def _build_optimization(
    cfg: Config, model: torch.nn.Module, epochs: int, steps: int, warmup: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and its schedule (``warmup`` steps, then ``epochs`` x ``steps``)."""
    # built before any freezing, so that the graph encoder's parameters are in it from the
    # start (unfreezing needs no new optimizer, and a resume restores its state exactly)
    optimizer = build_optimizer(
        model, cfg.scheduler, cfg.regularization.weight_decay, text_learning_rate(cfg)
    )
    scheduler = build_scheduler(
        optimizer, dataclasses.replace(cfg.scheduler, warmup_steps=warmup), epochs, steps
    )
    return optimizer, scheduler


def early_stopping_note(cfg: Config) -> tuple[int, str]:
    """(level, line) saying that early stopping cannot fire in a run of ``cfg``: INFO when a
    budget's epoch cap is what rules it out (every quick run), WARNING when the run's own
    ``scheduler.epochs`` does (a full run that asked for early stopping and will not get it)."""
    s, epochs = cfg.scheduler, max_epochs(cfg)
    line = (
        f"early stopping cannot fire: patience {s.n_early_stopping} >= {epochs} epochs; "
        "metrics.json records early_stopping_can_fire: false"
    )
    if epochs < s.epochs:
        return logging.INFO, f"{line} (budget.max_epochs={epochs} caps the run)"
    return logging.WARNING, (
        f"{line}; the run trains all {epochs} epochs (lower scheduler.n_early_stopping below "
        "scheduler.epochs for it to stop early)"
    )


class Trainer:
    """One config, one run directory; build it with :meth:`from_config`."""

    def __init__(
        self,
        cfg: Config,
        files: RunDir,
        data: CrystalDataModule,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        stopper: EarlyStopping,
        device: torch.device,
        logger: MetricLogger,
        warmup_steps_used: int,
        dist: Dist = SINGLE,
    ) -> None:
        self.cfg, self.files, self.dm, self.model = cfg, files, data, model
        self.optimizer, self.scheduler, self.stopper = optimizer, scheduler, stopper
        self.device, self.logger, self.dist = device, logger, dist
        self.warmup_steps_used = warmup_steps_used
        self.hash = config_hash(cfg)
        self.max_epochs = max_epochs(cfg)
        self.can_fire = stopper.can_fire(self.max_epochs)
        self.progress = Progress()
        self.loader_gen = torch.Generator()
        self.init: dict[str, Any] | None = None  # what model.init_from loaded (fine-tuning)
        self.freeze = finetune.GraphFreeze(model, 0)
        self.train_loader = self._loader("train", shuffle=True, generator=self.loader_gen)
        self.val_loader = self._loader("val", shuffle=False)
        # a fixed training subset evaluated in eval mode after every epoch (the gap ratio)
        self.train_eval_ids = train_eval_ids(data.datasets["train"].ids)
        self.train_eval_loader = self._loader(self.train_eval_ids, shuffle=False)
        # called after each epoch's validation; a returned string stops the run and becomes its
        # stop_reason (an Optuna trial's pruning: fusion_tuner.search.pruning.TrialReporter)
        self.epoch_hooks: list[Callable[[EpochRecord], str | None]] = []
        # what computes the training forward pass: DDP's wrapper on several ranks (it averages
        # the gradients over them); self.model stays the plain module (checkpoints, evaluation)
        self.wrapped = self._wrap()

    def _loader(
        self, split: str | list[str], shuffle: bool, generator: torch.Generator | None = None
    ):
        """The loader of a split (or of these ids, in order); on several ranks, this rank's
        slices of its batches."""
        if not self.dist.active:
            return self.dm.loader(split, shuffle=shuffle, generator=generator)
        return sharded_loader(
            self.dm.datasets[split] if isinstance(split, str) else self.dm.dataset(split),
            self.cfg.batch.batch_size,
            self.dist,
            shuffle,
            generator,
            self.cfg.trainer.num_workers,
        )

    def _wrap(self) -> torch.nn.Module:
        if not self.dist.active:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        run_dir: str | Path,
        logger: MetricLogger | None = None,
        dist: Dist = SINGLE,
    ) -> Trainer:
        """Build data, model, optimizer, schedule and early stopping for ``cfg``; write the
        run's split, data report and tokenizer; resume from ``last.pt`` when present.

        Args:
            dist: this process's rank when the run trains on several (every rank calls this).
        """
        files = RunDir(run_dir)
        device = _runtime_device(cfg, dist)
        source = finetune.source_run(cfg)  # model.init_from, found before any data work
        # a resumed run keeps the tokenizer it saved; a fine-tuned one starts with its source's
        tokenizer = _own_tokenizer(files) or finetune.source_tokenizer(cfg, source)
        dm = _setup_data(cfg, files, dist, tokenizer)
        dm.pin_memory = device.type == "cuda"  # asynchronous host-to-device batch copies
        seed_everything(cfg.random_seed)  # model init does not depend on what data loading drew
        model, init = _build_run_model(cfg, dm, device, source)
        if getattr(model, "text_encoder", None) is not None:  # once its weights are final
            dm.report["text_store"] = prepare_text_states(cfg, dm, model.text_encoder, device)
            if dist.is_main:
                files.write_data_report(dm.report)
        epochs, steps = max_epochs(cfg), math.ceil(len(dm.datasets["train"]) / cfg.batch.batch_size)
        warmup = _warmup_steps(cfg, epochs, steps)
        optimizer, scheduler = _build_optimization(cfg, model, epochs, steps, warmup)
        stopper = EarlyStopping(cfg.scheduler.n_early_stopping, cfg.scheduler.min_delta)
        trainer = cls(
            cfg,
            files,
            dm,
            model,
            optimizer,
            scheduler,
            stopper,
            device,
            logger or NullLogger(),
            warmup,
            dist,
        )
        trainer.init = init
        trainer.freeze = finetune.GraphFreeze(model, cfg.model.freeze_graph_epochs)
        if dist.is_main:
            trainer._announce(steps)
        state = trainer._resumable_state()
        if state is not None:
            trainer.resume(state)
        return trainer

    def _resumable_state(self) -> dict[str, Any] | None:
        """``last.pt``, or the previous epoch's copy when ``last.pt`` is unreadable; None when
        the run starts fresh."""
        last, previous = self.files.last_checkpoint, self.files.previous_last_checkpoint
        if not last.is_file() and not previous.is_file():
            return None
        problems = []
        for path in (last, previous):
            if not path.is_file():
                continue
            try:
                state = ckpt_io.load_checkpoint(path, self.device)
            except CheckpointError as exc:
                problems.append(str(exc))
                log.warning("%s", exc)
                continue
            if path == previous:
                log.warning("resuming from %s (the epoch before last.pt)", path.name)
            self.resumed_from = path
            return state
        raise CheckpointError(
            "cannot resume: " + "; ".join(problems) + ". Rerun with trainer.start_over=true to "
            "discard this run's checkpoints and train from epoch 1"
        )

    def _announce(self, steps: int) -> None:
        params = list(self.model.parameters())
        log.info(
            "model: %d parameters (%d trainable); %d epochs max, %d steps/epoch, device %s%s",
            sum(p.numel() for p in params),
            sum(p.numel() for p in params if p.requires_grad),
            self.max_epochs,
            steps,
            self.device,
            f" (rank 0 of {self.dist.world}, global batch {self.cfg.batch.batch_size})"
            if self.dist.active
            else "",
        )
        if not self.can_fire:
            log.log(*early_stopping_note(self.cfg))

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.progress.history

    # ---------------------------------------------------------------------- checkpoints
    def resume(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer, schedule, early stopping, RNGs and progress."""
        if state.get("config_hash") != self.hash:
            raise CheckpointError(
                f"{self.files.last_checkpoint} was written by a different config "
                f"(hash {state.get('config_hash')} != {self.hash}); use a new run directory, or "
                "trainer.start_over=true to discard its checkpoints"
            )
        try:
            self.model.load_state_dict(state["model_state"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.stopper.load_state_dict(state["early_stopping"])
            ckpt_io.set_rng_state(state["rng"])
            missing = [k for k in _PROGRESS_KEYS if k not in state]
            if missing:
                raise KeyError(f"no {', '.join(missing)}")
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            path = getattr(self, "resumed_from", self.files.last_checkpoint)
            first = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"cannot resume from {path}: it does not fit this version's model or training "
                f"state ({type(exc).__name__}: {first}; written by another version of "
                "fusion_tuner?). Rerun with trainer.start_over=true to discard this run's "
                "checkpoints and train from epoch 1"
            ) from exc
        # the history the checkpoint claims: a row written after it (a kill between the two)
        # is dropped, so history.csv and the checkpoint agree again
        if self.dist.is_main:
            self.files.write_history(HISTORY_COLUMNS, list(state["history"]))
        self.progress = Progress(
            history=list(state["history"]),
            best_val_mae=state["best_val_mae"],
            best_epoch=state["best_epoch"],
            train_seconds=state["train_seconds"],
            train_crystals=state["train_crystals"],
            stop_reason=state.get("stop_reason"),
        )
        log.info("resumed from last.pt at epoch %d", state["epoch"])

    def _payload(self, epoch: int) -> dict[str, Any]:
        """What both checkpoints hold: enough to rebuild the model from the file alone."""
        return {
            "config": ckpt_io.config_to_dict(self.cfg),
            "config_hash": self.hash,
            "data_info": self.dm.info.as_dict(),
            "model_state": self.model.state_dict(),
            "normalizer": {
                "mean": float(self.model.target_mean),
                "std": float(self.model.target_std),
            },
            "epoch": epoch,
            "best_epoch": self.progress.best_epoch,
            "best_val_mae": self.progress.best_val_mae,
        }

    def _save_last(self, epoch: int) -> None:
        """Write ``last.pt``; the one it replaces becomes ``last.prev.pt``, so an unreadable
        ``last.pt`` never costs more than one epoch. The new file is complete before either
        rename, and a kill between the renames leaves ``last.prev.pt`` to resume from."""
        p, last = self.progress, self.files.last_checkpoint
        fresh = self.files.path / f".last.pt.{os.getpid()}.next.tmp"
        ckpt_io.save_checkpoint(
            fresh,
            self._payload(epoch)
            | {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "early_stopping": self.stopper.state_dict(),
                "rng": ckpt_io.rng_state(),
                "history": p.history,
                "train_seconds": p.train_seconds,
                "train_crystals": p.train_crystals,
                "stop_reason": p.stop_reason,
            },
        )
        if last.is_file():
            os.replace(last, self.files.previous_last_checkpoint)
        os.replace(fresh, last)

    # ---------------------------------------------------------------------------- epochs
    def fit(self) -> None:
        """Train from the next epoch until ``max_epochs``, early stopping or an epoch hook
        (a pruned search trial)."""
        cfg, p = self.cfg, self.progress
        done = p.history and (p.stop_reason is not None or p.next_epoch > self.max_epochs)
        main = self.dist.is_main
        mode = cfg.trainer.progress if main else "line"  # one progress display per run
        bar = progress(range(p.next_epoch, self.max_epochs + 1) if not done else [], mode)
        for epoch in bar:
            # data order and dropout depend only on (seed, epoch, rank): exact after a resume
            self.loader_gen.manual_seed(cfg.random_seed * 100_003 + epoch)
            torch.manual_seed(epoch_seed(cfg.random_seed, epoch, self.dist.rank))
            self.freeze.apply(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            batches = BatchProgress(self.train_loader, mode, epoch)
            train = train_epoch(
                self.model,
                batches,
                self.optimizer,
                self.scheduler,
                cfg,
                self.device,
                self.dist,
                self.wrapped,
            )
            # every rank gets the whole split's evaluation, so all take the same decisions
            val = evaluate(self.model, self.val_loader, cfg, self.device, self.dist)
            train_eval = evaluate(self.model, self.train_eval_loader, cfg, self.device, self.dist)
            p.train_seconds += train.seconds
            p.train_crystals += train.crystals
            if val.metrics["mae"] < p.best_val_mae:
                p.best_val_mae, p.best_epoch = val.metrics["mae"], epoch
                if main:
                    ckpt_io.save_checkpoint(self.files.best_checkpoint, self._payload(epoch))
            # rank 0's decision binds every rank (they compute the same one)
            stop = bool(self.dist.share(self.stopper.step(val.metrics["mae"], epoch)))
            if stop:
                p.stop_reason = "early_stopping"
            record = EpochRecord.of(epoch, train, train_eval, val, lr, p.best_val_mae)
            hooked = [r for r in (hook(record) for hook in self.epoch_hooks) if r]
            if self.dist.active:  # rank 0's hooks decide for every rank
                hooked = [r for part in self.dist.all_gather_object(hooked) for r in part]
            if hooked and not stop:
                p.stop_reason, stop = hooked[0], True
            p.history.append(record.row())
            if main:
                # history first: a kill between the two leaves a row that resume drops, never
                # a checkpoint whose epoch history.csv lacks
                self.files.write_history(HISTORY_COLUMNS, p.history)
                self._save_last(epoch)
                self.logger.log(record.tracked(), step=epoch)
                self._show(bar, record)
            if not math.isfinite(val.metrics["mae"]) and p.best_epoch < 0:
                raise self._diverged(epoch, train.loss, val.metrics["mae"])
            if stop:
                if main and p.stop_reason == "early_stopping":
                    self._explain_stop(epoch)
                break
        if cfg.trainer.compile and main:
            log.info("%s", self.model.compile_report())

    def _diverged(self, epoch: int, train_loss: float, val_mae: float) -> Diverged:
        s = self.cfg.scheduler
        return Diverged(
            f"the run diverged: validation MAE is {val_mae} at epoch {epoch} (train loss "
            f"{train_loss}) and no epoch had a finite one, so there is no best model; lower "
            f"scheduler.learning_rate (now {s.learning_rate:g} with scheduler.optimizer="
            f"{s.optimizer}; the baseline's is {SchedulerConfig.learning_rate:g}) and rerun with "
            "trainer.start_over=true (or into a new run directory)"
        )

    def _show(self, bar: Any, record: EpochRecord) -> None:
        line = record.console(self.max_epochs, self.progress.best_epoch)
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"val_mae {record.val_mae:.4f} best {record.best_val_mae:.4f}")
            to_run_log("%s", line)  # the bar shows it; train.log keeps every epoch's line
        else:
            log.info(line)

    def _explain_stop(self, epoch: int) -> None:
        s = self.cfg.scheduler
        log.info(
            "early stopping at epoch %d: val MAE did not improve on %.4f (epoch %d) by more than "
            "min_delta=%g for %d epochs",
            epoch,
            self.stopper.best,
            self.stopper.best_epoch,
            s.min_delta,
            s.n_early_stopping,
        )

    # ---------------------------------------------------------------------------- finish
    def _best_gap(self, results: dict[str, Any]) -> dict[str, Any]:
        """The gap ratio of the best epoch as ``history.csv`` has it (validation MAE over the
        eval-mode MAE of the fixed training subset), with that MAE and the subset's size; a
        history from before that column (a resumed older run) falls back to the best model's
        MAE on the whole training split."""
        p = self.progress
        row = next((r for r in p.history if int(r["epoch"]) == p.best_epoch), None)
        value = row.get("train_eval_mae") if row is not None else None
        if row is None or value in (None, "") or not math.isfinite(float(value)):
            return {"gap_ratio": gap_ratio(results["val"]["mae"], results["train"]["mae"])}
        return {
            "gap_ratio": float(row["gap_ratio"]),
            "gap_train_mae": float(value),
            "gap_train_crystals": len(self.train_eval_ids),
        }

    def finish(self, wall_seconds: float) -> dict[str, Any]:
        """Evaluate the best model on every split, write predictions and curves; return the
        ``metrics.json`` content."""
        self.dist.barrier()  # rank 0 has written best_model.pt before any rank reads it
        best = ckpt_io.load_checkpoint(self.files.best_checkpoint, self.device)
        self.model.load_state_dict(best["model_state"])
        results, train_mean = self._evaluate_splits()
        p = self.progress
        if self.dist.is_main:
            plot_curves(
                [(self.cfg.experiment_name, p.history, p.best_epoch)],
                self.files.curves,
                title=self.cfg.experiment_name,
            )
        return self._final_metrics(results, train_mean, wall_seconds)

    def _evaluate_splits(self) -> tuple[dict[str, Any], float]:
        """The loaded model's metrics on every split (rank 0 writes the predictions); returns
        them and the training targets' mean (the mean predictor the skill is measured against)."""
        results: dict[str, Any] = {}
        train_mean = float("nan")
        for split in ("train", "val", "test"):
            loader = self._loader(split, shuffle=False)
            ev = evaluate(self.model, loader, self.cfg, self.device, self.dist)
            if self.dist.is_main:
                self.files.write_predictions(split, ev.ids, ev.target, ev.prediction)
            if split == "train":  # the mean predictor: the training targets' mean
                train_mean = float(ev.target.mean()) if ev.target.size else float("nan")
            results[split] = {k: ev.metrics[k] for k in ("mae", "rmse", "r2", "n")} | (
                skill_metrics(ev.target, ev.prediction, train_mean)
            )
        return results, train_mean

    def _final_metrics(
        self, results: dict[str, Any], train_mean: float, wall_seconds: float
    ) -> dict[str, Any]:
        """The ``metrics.json`` content of the completed run around the splits' ``results``."""
        p = self.progress
        default_stop = (
            "max_epochs" if self.max_epochs == self.cfg.scheduler.epochs else "budget_max_epochs"
        )
        metrics = {
            "status": COMPLETED,
            "experiment": self.cfg.experiment_name,
            "modality": modality(self.cfg),
            "inert_text_keys": inert_text_keys(self.cfg),
            "best_epoch": p.best_epoch,
            "epochs_run": len(p.history),
            "max_epochs": self.max_epochs,
            "stop_reason": p.stop_reason or default_stop,
            "early_stopping_can_fire": self.can_fire,
            "n_early_stopping": self.cfg.scheduler.n_early_stopping,
            "warmup_steps_used": self.warmup_steps_used,
            # scheduler steps = optimizer steps (one per training batch; restored on resume)
            "optimizer_steps": int(self.scheduler.last_epoch),
            **results,
            **self._best_gap(results),
            "train_target_mean": train_mean,
            "learned_nothing": learned_nothing(results["val"]["skill"]),
            "wall_time_s": wall_seconds,
            "train_crystals_per_s": p.train_crystals / p.train_seconds if p.train_seconds else 0.0,
            "seed": self.cfg.random_seed,
            "config_hash": self.hash,
            "budget": self.cfg.budget.name,
            "target": self.cfg.dataset.target,
            "device": str(self.device),
            "devices": self.dist.world,
            "code_version": __version__,
            "git_revision": git_revision(),
        }
        if self.init is not None:  # fine-tuned: what model.init_from loaded, and the freezing
            metrics["init"] = self.init | {
                "freeze_graph_epochs": self.cfg.model.freeze_graph_epochs
            }
        return metrics
