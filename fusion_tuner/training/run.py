"""One training run: ``train(cfg, run_dir)`` writes every file of a run directory.

Files: ``split.json``, ``data_report.json``, ``train.log``, ``history.csv``, ``curves.png``,
``best_model.pt`` (lowest validation MAE), ``last.pt`` (everything needed to resume),
``predictions_{train,val,test}.csv`` (best model), ``metrics.json`` (keys: see README).

Re-running into a directory with ``last.pt`` resumes exactly; into a completed run it only
reports that the run is complete.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import random
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner import __version__
from fusion_tuner.config import Config, validate
from fusion_tuner.data.cache import atomic_write_text
from fusion_tuner.errors import CheckpointError
from fusion_tuner.training import checkpoint as ckpt_io
from fusion_tuner.training.early_stopping import EarlyStopping
from fusion_tuner.training.loggers import NullLogger, build_logger
from fusion_tuner.training.loop import Evaluation, evaluate, train_epoch
from fusion_tuner.training.optim import build_optimizer, build_scheduler
from fusion_tuner.training.plots import plot_curves

log = logging.getLogger("fusion_tuner")

HISTORY_COLUMNS = (
    "epoch", "train_loss", "train_mae", "val_loss", "val_mae", "lr", "contrastive_loss",
    "epoch_seconds", "val_rmse", "val_r2", "best_val_mae", "gap_ratio",
)  # fmt: skip
# Fields that change how a run is tracked or where caches live, not what it computes.
HASH_EXCLUDED = {
    ("logger",),
    ("trainer", "progress"),
    ("dataset", "cache_dir"),
    ("dataset", "num_workers"),
}


def config_hash(cfg: Config) -> str:
    """Hash of the resolved config, ignoring output/cache paths and tracking settings."""
    raw = asdict(cfg)
    for key in HASH_EXCLUDED:
        node = raw
        for part in key[:-1]:
            node = node[part]
        node.pop(key[-1], None)
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def max_epochs(cfg: Config) -> int:
    """``scheduler.epochs``, capped by ``budget.max_epochs``: a hard cap, also after a resume."""
    cap = cfg.budget.max_epochs
    return min(cfg.scheduler.epochs, cap) if cap is not None else cfg.scheduler.epochs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError(
                "trainer.device=cuda but no CUDA device is visible; use trainer.device=auto"
            )
        return torch.device("cuda")
    return torch.device("cpu")


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(json.dumps(data, indent=1, default=float) + "\n", path)


def write_csv(path: Path, columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(buf.getvalue(), path)


def write_predictions(path: Path, ev: Evaluation) -> None:
    rows = [
        {"id": i, "target": f"{t:.6g}", "prediction": f"{p:.6g}"}
        for i, t, p in zip(ev.ids, ev.target, ev.prediction, strict=True)
    ]
    write_csv(path, ("id", "target", "prediction"), rows)


class _FileLog:
    """Attach ``train.log`` to the package logger for the duration of one run."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )

    def __enter__(self) -> _FileLog:
        pkg = logging.getLogger("fusion_tuner")
        pkg.addHandler(self.handler)
        if pkg.getEffectiveLevel() > logging.INFO:
            pkg.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("fusion_tuner").removeHandler(self.handler)
        self.handler.close()


class Trainer:
    """setup -> fit -> finish, for one config and one run directory."""

    def __init__(self, cfg: Config, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.hash = config_hash(cfg)
        self.max_epochs = max_epochs(cfg)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 1
        self.best_val = math.inf
        self.best_epoch = -1
        self.stop_reason = (
            "max_epochs" if self.max_epochs == cfg.scheduler.epochs else "budget_max_epochs"
        )
        self.train_seconds = 0.0
        self.train_crystals = 0

    # ------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        from fusion_tuner.data.module import CrystalDataModule
        from fusion_tuner.models.builders import build_model

        cfg = self.cfg
        seed_everything(cfg.random_seed)
        if cfg.trainer.num_threads:
            torch.set_num_threads(cfg.trainer.num_threads)
        torch.use_deterministic_algorithms(cfg.trainer.deterministic, warn_only=True)
        self.device = pick_device(cfg.trainer.device)
        self.dm = CrystalDataModule(cfg).setup()
        self.dm.write_split(self.run_dir)
        self.dm.tokenizer.save_pretrained(str(self.run_dir / "tokenizer"))
        seed_everything(cfg.random_seed)  # model init does not depend on what data loading drew
        self.model = build_model(cfg, self.dm.info).to(self.device)
        y = self.dm.datasets["train"].targets
        self.model.set_normalizer(float(y.mean()), float(y.std()) if len(y) > 1 else 1.0)
        self.loader_gen = torch.Generator()
        self.train_loader = self.dm.loader("train", generator=self.loader_gen)
        steps = len(self.train_loader)
        self.optimizer = build_optimizer(self.model, cfg.scheduler, cfg.regularization.weight_decay)
        sched_cfg = cfg.scheduler
        frac = cfg.budget.max_warmup_fraction
        if frac is not None and sched_cfg.warmup_steps > frac * self.max_epochs * steps:
            capped = int(frac * self.max_epochs * steps)
            log.warning(
                "budget=%s caps warmup_steps %d -> %d (%.0f%% of the run's %d steps)",
                cfg.budget.name, sched_cfg.warmup_steps, capped, 100 * frac, self.max_epochs * steps,
            )  # fmt: skip
            sched_cfg = dataclasses.replace(sched_cfg, warmup_steps=capped)
        self.warmup_steps_used = sched_cfg.warmup_steps
        self.scheduler = build_scheduler(self.optimizer, sched_cfg, self.max_epochs, steps)
        self.stopper = EarlyStopping(cfg.scheduler.n_early_stopping, cfg.scheduler.min_delta)
        self.can_fire = self.stopper.can_fire(self.max_epochs)
        n_params = sum(p.numel() for p in self.model.parameters())
        log.info(
            "model: %d parameters (%d trainable); %d epochs max, %d steps/epoch, device %s",
            n_params, sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            self.max_epochs, steps, self.device,
        )  # fmt: skip
        if not self.can_fire:
            log.warning(
                "EARLY STOPPING CANNOT FIRE: n_early_stopping=%d >= %d epochs; the run will train "
                "all %d epochs (metrics.json records early_stopping_can_fire: false)",
                cfg.scheduler.n_early_stopping, self.max_epochs, self.max_epochs,
            )  # fmt: skip
        if (self.run_dir / "last.pt").is_file():
            self._resume(ckpt_io.load_checkpoint(self.run_dir / "last.pt", self.device))

    def _resume(self, state: dict[str, Any]) -> None:
        if state.get("config_hash") != self.hash:
            raise CheckpointError(
                f"{self.run_dir / 'last.pt'} was written by a different config "
                f"(hash {state.get('config_hash')} != {self.hash}); use a new run directory"
            )
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.load_state_dict(state["early_stopping"])
        ckpt_io.set_rng_state(state["rng"])
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1
        self.best_val, self.best_epoch = state["best_val_mae"], state["best_epoch"]
        self.train_seconds, self.train_crystals = state["train_seconds"], state["train_crystals"]
        if state.get("stop_reason"):
            self.stop_reason = state["stop_reason"]
        log.info("resumed from last.pt at epoch %d", state["epoch"])

    # -------------------------------------------------------------------------------- fit
    def _payload(self, epoch: int) -> dict[str, Any]:
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
            "best_epoch": self.best_epoch,
            "best_val_mae": self.best_val,
        }

    def _epoch_done(self, epoch: int, tr: dict[str, float], val: Evaluation, lr: float) -> bool:
        improved = val.metrics["mae"] < self.best_val
        if improved:
            self.best_val, self.best_epoch = val.metrics["mae"], epoch
            ckpt_io.save_checkpoint(self.run_dir / "best_model.pt", self._payload(epoch))
        stop = self.stopper.step(val.metrics["mae"], epoch)
        row = {
            "epoch": epoch, "train_loss": tr["train_loss"], "train_mae": tr["train_mae"],
            "val_loss": val.loss, "val_mae": val.metrics["mae"], "lr": lr,
            "contrastive_loss": tr["contrastive_loss"], "epoch_seconds": tr["seconds"],
            "val_rmse": val.metrics["rmse"], "val_r2": val.metrics["r2"],
            "best_val_mae": self.best_val, "gap_ratio": val.metrics["mae"] / max(tr["train_mae"], 1e-12),
        }  # fmt: skip
        self.history.append(row)
        if stop:
            self.stop_reason = "early_stopping"
        last = self._payload(epoch) | {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "rng": ckpt_io.rng_state(),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "train_crystals": self.train_crystals,
            "stop_reason": self.stop_reason if stop else None,
        }
        ckpt_io.save_checkpoint(self.run_dir / "last.pt", last)
        write_csv(self.run_dir / "history.csv", HISTORY_COLUMNS, self.history)
        self.logger.log({
            "epoch": epoch, "train/loss": row["train_loss"], "train/mae": row["train_mae"],
            "val/loss": row["val_loss"], "val/mae": row["val_mae"], "val/mae_best": self.best_val,
            "lr": lr, "train/contrastive_loss": row["contrastive_loss"], "gap_ratio": row["gap_ratio"],
        }, step=epoch)  # fmt: skip
        return stop

    def fit(self) -> None:
        cfg = self.cfg
        finished = self.history and (
            self.stop_reason == "early_stopping" or self.start_epoch > self.max_epochs
        )
        epochs = range(self.start_epoch, self.max_epochs + 1) if not finished else range(0)
        bar = _progress(epochs, cfg.trainer.progress)
        val_loader = self.dm.loader("val", shuffle=False)
        for epoch in bar:
            # data order and dropout depend only on (seed, epoch): exact after a resume
            self.loader_gen.manual_seed(cfg.random_seed * 100_003 + epoch)
            torch.manual_seed(cfg.random_seed * 100_003 + epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            tr = train_epoch(
                self.model, self.train_loader, self.optimizer, self.scheduler, cfg, self.device
            )
            self.train_seconds += tr["seconds"]
            self.train_crystals += tr["crystals"]
            val = evaluate(self.model, val_loader, cfg, self.device)
            stop = self._epoch_done(epoch, tr, val, lr)
            line = (
                f"epoch {epoch}/{self.max_epochs} train_loss {tr['train_loss']:.4f} "
                f"train_mae {tr['train_mae']:.4f} val_mae {val.metrics['mae']:.4f} "
                f"best {self.best_val:.4f}@{self.best_epoch} lr {lr:.2e} ({tr['seconds']:.1f}s)"
            )
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"val_mae {val.metrics['mae']:.4f} best {self.best_val:.4f}")
                log.debug(line)
            else:
                log.info(line)
            if stop:
                log.info(
                    "early stopping at epoch %d: val MAE did not improve on %.4f (epoch %d) by more "
                    "than min_delta=%g for %d epochs", epoch, self.stopper.best,
                    self.stopper.best_epoch, cfg.scheduler.min_delta, cfg.scheduler.n_early_stopping,
                )  # fmt: skip
                break

    # ----------------------------------------------------------------------------- finish
    def finish(self, wall: float) -> dict[str, Any]:
        best = ckpt_io.load_checkpoint(self.run_dir / "best_model.pt", self.device)
        self.model.load_state_dict(best["model_state"])
        results: dict[str, Any] = {}
        for split in ("train", "val", "test"):
            ev = evaluate(self.model, self.dm.loader(split, shuffle=False), self.cfg, self.device)
            write_predictions(self.run_dir / f"predictions_{split}.csv", ev)
            results[split] = {k: ev.metrics[k] for k in ("mae", "rmse", "r2", "n")}
        plot_curves(
            self.history, self.best_epoch, self.run_dir / "curves.png", self.cfg.experiment_name
        )
        train_mae = results["train"]["mae"]
        return {
            "status": "completed",
            "experiment": self.cfg.experiment_name,
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "max_epochs": self.max_epochs,
            "stop_reason": self.stop_reason,
            "early_stopping_can_fire": self.can_fire,
            "n_early_stopping": self.cfg.scheduler.n_early_stopping,
            "warmup_steps_used": self.warmup_steps_used,
            **results,
            "gap_ratio": results["val"]["mae"] / train_mae if train_mae > 0 else float("inf"),
            "wall_time_s": wall,
            "train_crystals_per_s": self.train_crystals / self.train_seconds
            if self.train_seconds
            else 0.0,
            "seed": self.cfg.random_seed,
            "config_hash": self.hash,
            "budget": self.cfg.budget.name,
            "target": self.cfg.dataset.target,
            "device": str(self.device),
            "code_version": __version__,
        }


def _progress(epochs: range, mode: str):
    tty = sys.stderr.isatty()
    if mode == "bar" or (mode == "auto" and tty):
        from tqdm import tqdm

        return tqdm(epochs, desc="epochs", dynamic_ncols=True)
    return epochs


def train(cfg: Config, run_dir: str | Path, sweep: str | None = None) -> dict[str, Any]:
    """Train one run into ``run_dir`` and return its ``metrics.json`` content.

    ``sweep`` names the multirun this run belongs to (its W&B group unless logger.group is set).

    A failing run records ``status: failed`` and the error in ``metrics.json``, the traceback in
    ``train.log``, and re-raises so that the launcher sees the failure.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.json"
    with _FileLog(run_dir / "train.log"):
        previous = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        if previous.get("status") == "completed":
            if previous.get("config_hash") != config_hash(cfg):
                raise CheckpointError(
                    f"{run_dir} holds a completed run of a different config "
                    f"({previous.get('config_hash')} != {config_hash(cfg)}); use a new run directory"
                )
            log.info(
                "run in %s is already complete (config %s): nothing to do",
                run_dir,
                previous["config_hash"],
            )
            return previous
        action = {"failed": "rerun after failure", "running": "resumed after interruption"}.get(
            previous.get("status", ""), "fresh"
        )
        log.info("run %s: %s", run_dir.name, action)
        attempts = [
            *previous.get("attempts", []),
            {"action": action, "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
        ]
        base = {"status": "running", "experiment": cfg.experiment_name, "seed": cfg.random_seed,
                "config_hash": config_hash(cfg), "budget": cfg.budget.name, "pid": os.getpid(),
                "attempts": attempts}  # fmt: skip
        write_json(metrics_path, base)
        trainer = Trainer(cfg, run_dir)
        defaults = {"group": sweep or cfg.experiment_name, "job_type": cfg.experiment_name,
                    "name": f"{cfg.experiment_name}-seed{cfg.random_seed}"}  # fmt: skip
        trainer.logger = NullLogger()
        failed = True
        start = time.perf_counter()
        try:
            validate(cfg)
            trainer.logger = build_logger(
                cfg.logger, run_dir, ckpt_io.config_to_dict(cfg), defaults
            )
            trainer.setup()
            trainer.fit()
            metrics = trainer.finish(time.perf_counter() - start) | {"attempts": attempts}
            write_json(metrics_path, metrics)
            trainer.logger.summary({f"{s}/{k}": metrics[s][k] for s in ("train", "val", "test") for k in ("mae", "rmse", "r2")}
                                   | {"gap_ratio": metrics["gap_ratio"], "best_epoch": metrics["best_epoch"],
                                      "stop_reason": metrics["stop_reason"]})  # fmt: skip
            log.info(
                "done: best epoch %d, val MAE %.4f, test MAE %.4f, gap ratio %.2f (%s)",
                metrics["best_epoch"], metrics["val"]["mae"], metrics["test"]["mae"],
                metrics["gap_ratio"], metrics["stop_reason"],
            )  # fmt: skip
            failed = False
            return metrics
        except BaseException as exc:
            log.error("run failed:\n%s", traceback.format_exc())
            write_json(
                metrics_path, base | {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            )
            raise
        finally:
            trainer.logger.finish(failed=failed)
