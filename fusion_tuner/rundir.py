"""The run directory: the one place that knows a run's files, reads and writes them, and says
what state a run is in.

A run directory (``outputs/runs/<experiment>/<time>/`` or one run of a sweep) holds::

    .hydra/config.yaml, overrides.yaml   the resolved config and the overrides (Hydra's)
    split.json                           ids per split
    ids_train_val_test.json              the same split in upstream ALIGNN's form
    data_report.json                     what was loaded, dropped and why, cache hits
    train.log                            the log, tracebacks included
    history.csv                          one row per epoch (see training/epoch.py)
    curves.png                           loss, MAE and gap ratio per epoch
    best_model.pt, last.pt               lowest-validation-MAE model; everything to resume
    predictions_{train,val,test}.csv     id, target, prediction (best model)
    metrics.json                         status and results (keys: see docs/runs.md)
    tokenizer/                           the tokenizer the run used

:class:`RunDir` is the layout (paths plus reading and atomic writing of each file);
:class:`Run` is the one run type that the sweep summary, the analysis commands and prediction
use: a run directory (or a checkpoint) with its metrics, config, split and, on demand, its model.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fusion_tuner.errors import CheckpointError, RunError, RunRefused
from fusion_tuner.io import LockHeld, exclusive_lock, write_csv, write_json

if TYPE_CHECKING:
    import torch

    from fusion_tuner.config import Config

RUNNING, COMPLETED, FAILED, INTERRUPTED, MISSING, NOT_STARTED = (
    "running",
    "completed",
    "failed",
    "interrupted",
    "missing",
    "not started",
)
# a sweep's run whose last attempt was refused (see REFUSALS_DIR): a summary status only
REFUSED = "refused"
# a run whose metrics.json or .hydra/ files cannot be read (corrupt): reports list it and go on
UNREADABLE = "unreadable"
SPLITS = ("train", "val", "test")
# Hydra's record of a run inside its directory (config.yaml, hydra.yaml, overrides.yaml)
HYDRA_SUBDIR = ".hydra"
# Beside a sweep's run directories: one ``<run dir name>.json`` per run whose last attempt was
# refused (RunRefused: a live owner, or a run of another config), with that attempt's overrides
# and the reason; kept outside the run directory, whose files a refused process never touches
REFUSALS_DIR = ".refused"


@dataclass(frozen=True)
class Predictions:
    """One ``predictions_<split>.csv``: ids with target and prediction, in file order."""

    ids: list[str]
    target: np.ndarray
    prediction: np.ndarray

    def aligned(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(target, prediction) in the order of ``ids``; None unless the file covers exactly them."""
        if set(self.ids) != set(ids):
            return None
        pos = {cid: i for i, cid in enumerate(self.ids)}
        order = [pos[i] for i in ids]
        return self.target[order], self.prediction[order]


class RunDir:
    """Paths of a run directory and the reading and atomic writing of each of its files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------------------ paths
    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best_model.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.pt"

    @property
    def previous_last_checkpoint(self) -> Path:
        """The ``last.pt`` of the epoch before, kept until the next one is complete."""
        return self.path / "last.prev.pt"

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def alignn_split(self) -> Path:
        """The split as upstream ALIGNN's ``ids_train_val_test.json`` (id_train/id_val/id_test)."""
        return self.path / "ids_train_val_test.json"

    @property
    def data_report(self) -> Path:
        return self.path / "data_report.json"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer"

    @property
    def hydra_dir(self) -> Path:
        """``.hydra/``: Hydra's record of the run (written by the run once it owns the folder)."""
        return self.path / HYDRA_SUBDIR

    @property
    def hydra_config(self) -> Path:
        return self.hydra_dir / "config.yaml"

    @property
    def hydra_overrides(self) -> Path:
        return self.hydra_dir / "overrides.yaml"

    def predictions(self, split: str) -> Path:
        return self.path / f"predictions_{split}.csv"

    @property
    def refusal(self) -> Path:
        """Where a sweep records that the last attempt at this run was refused (beside it)."""
        return self.path.parent / REFUSALS_DIR / f"{self.path.name}.json"

    def is_run(self) -> bool:
        """True for a folder that a run has written into (Hydra's config or a metrics file)."""
        return self.hydra_config.parent.is_dir() or self.metrics.is_file()

    # ---------------------------------------------------------------------------- reading
    def read_metrics(self) -> dict[str, Any]:
        """``metrics.json`` (an empty dict when the run has not written one yet)."""
        return json.loads(self.metrics.read_text()) if self.metrics.is_file() else {}

    def read_refusal(self) -> dict[str, Any] | None:
        """``{"overrides": [...], "reason": "..."}`` of the last, refused attempt, else None."""
        if not self.refusal.is_file():
            return None
        try:
            found = json.loads(self.refusal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"overrides": [], "reason": f"refused ({self.refusal} is unreadable)"}
        return found if isinstance(found, dict) else None

    def read_split(self) -> dict[str, list[str]]:
        if not self.split.is_file():
            raise RunError(f"{self.split} not found: the run's recorded split is needed")
        return json.loads(self.split.read_text())

    def read_data_report(self) -> dict[str, Any]:
        """``data_report.json`` (an empty dict when absent)."""
        return json.loads(self.data_report.read_text()) if self.data_report.is_file() else {}

    def read_history(self) -> list[dict[str, str]]:
        if not self.history.is_file():
            raise RunError(f"{self.history} not found")
        with self.history.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def read_predictions(self, split: str) -> Predictions | None:
        path = self.predictions(split)
        if not path.is_file():
            return None
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return Predictions(
            [r["id"] for r in rows],
            np.array([float(r["target"]) for r in rows]),
            np.array([float(r["prediction"]) for r in rows]),
        )

    def read_config(self) -> dict[str, Any]:
        """Hydra's resolved config of the run as a plain dict ({} when absent)."""
        return _read_yaml(self.hydra_config) or {}

    def read_overrides(self) -> list[str]:
        return list(_read_yaml(self.hydra_overrides) or [])

    # ---------------------------------------------------------------------------- writing
    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics, metrics)

    def write_hydra_files(self, texts: dict[str, str]) -> None:
        """``.hydra/<name>`` for each ``{name: text}`` (each written atomically)."""
        from fusion_tuner.io import atomic_write_text

        for name, text in texts.items():
            atomic_write_text(text, self.hydra_dir / name)

    def record_refusal(self, overrides: list[str], reason: str) -> None:
        """Record (beside the run directory) that an attempt with ``overrides`` was refused."""
        write_json(self.refusal, {"overrides": list(overrides), "reason": reason})

    def clear_refusal(self) -> None:
        """The run's last attempt was not refused: drop an earlier attempt's record."""
        self.refusal.unlink(missing_ok=True)

    def write_split(self, splits: dict[str, list[str]]) -> None:
        """``split.json`` and, beside it, ALIGNN's ``ids_train_val_test.json`` of the same ids
        (so that upstream ALIGNN can be trained on exactly this split)."""
        from fusion_tuner.data.records import alignn_split

        write_json(self.split, splits)
        write_json(self.alignn_split, alignn_split(splits))

    def write_data_report(self, report: dict[str, Any]) -> None:
        write_json(self.data_report, report)

    def write_history(self, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        write_csv(self.history, columns, rows)

    def write_predictions(
        self, split: str, ids: list[str], target: np.ndarray, prediction: np.ndarray
    ) -> None:
        rows = (
            {"id": i, "target": f"{t:.6g}", "prediction": f"{p:.6g}"}
            for i, t, p in zip(ids, target, prediction, strict=True)
        )
        write_csv(self.predictions(split), ("id", "target", "prediction"), rows)


class RunLock:
    """The run directory is owned by one live process: an OS-level lock (``flock`` on
    ``.lock``) held for the run's life. The lock dies with its process, so a killed run never
    blocks its own resume; a second live process is refused at once, naming the owner.
    """

    def __init__(self, files: RunDir) -> None:
        self.files = files
        self._lock: Any = None

    def __enter__(self) -> RunLock:
        owner = (
            f"pid {os.getpid()} on host {socket.gethostname()}, "
            f"since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        )
        lock = exclusive_lock(self.files.lock, wait=False, owner=owner)
        try:
            lock.__enter__()
        except LockHeld as held:
            raise RunRefused(
                f"{self.files.path} is in use by another live run ({held.owner or 'unknown'}); "
                "wait for it to end, or give this run another directory "
                "(hydra.run.dir=... / hydra.sweep.dir=...)"
            ) from None
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None


def yaml_error() -> type[Exception]:
    import yaml

    return yaml.YAMLError


_NUMBER_KEYS = ("gap_ratio", "best_epoch", "epochs_run", "seed", "wall_time_s")


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def metrics_problem(metrics: Any) -> str | None:
    """What makes a parsed ``metrics.json`` unusable (None: nothing): not a JSON object, a
    status that is no text, or a result that is no number (``"mae": "abc"``)."""
    if not isinstance(metrics, dict):
        return f"holds a JSON {type(metrics).__name__}, not an object"
    if not isinstance(metrics.get("status", ""), str):
        return "its status is not a text"
    for split in SPLITS:
        values = metrics.get(split, {})
        if not isinstance(values, dict):
            return f"{split!r} is not an object"
        bad = [k for k, v in values.items() if not _is_number(v)]
        if bad:
            return f"{split}.{bad[0]} = {values[bad[0]]!r} is not a number"
    attempts = metrics.get("attempts", [])
    if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
        return "'attempts' is not a list of objects"
    bad = [k for k in _NUMBER_KEYS if not _is_number(metrics.get(k))]
    if bad:
        return f"{bad[0]} = {metrics[bad[0]]!r} is not a number"
    return None


def _read_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None


class Run:
    """A run: its directory's files, and (loaded on first use) its best model.

    Built by :func:`locate` (a run directory or a checkpoint file), by the sweep summary for
    every run directory of a sweep, or with :meth:`missing` for a planned run that never
    started. Attributes that read files are read once and kept.

    Args:
        path: the run directory (None for a planned run without one).
        name: how reports call the run (default: the directory name).
        checkpoint: the checkpoint the model comes from (default: ``best_model.pt``).
    """

    def __init__(
        self, path: str | Path | None, name: str | None = None, checkpoint: Path | None = None
    ) -> None:
        self.files = RunDir(path) if path is not None else None
        self.name = name or (self.files.path.name if self.files else "(missing)")
        self.checkpoint_path = checkpoint or (self.files.best_checkpoint if self.files else None)
        self._planned: tuple[str, list[str]] | None = None
        # the scheduler's view of a run that has not finished (e.g. "pending (Resources, job
        # 12_1)"), set by fusion_tuner.slurm.record.annotate_runs; it overrides the files' status
        self.live_status: str | None = None
        # why the sweep's last attempt at this run was refused (set by the sweep summary)
        self.refused: str | None = None
        # what could not be read of its files (see UNREADABLE)
        self._problems: list[str] = []

    @classmethod
    def missing(cls, experiment: str, overrides: list[str]) -> Run:
        """A planned run of a sweep that has no directory."""
        run = cls(None)
        run._planned = (experiment, list(overrides))
        return run

    def __repr__(self) -> str:
        return f"Run({self.name!r}, {self.status})"

    @property
    def path(self) -> Path:
        if self.files is None:
            raise RunError(f"run {self.name} has no directory (it never started)")
        return self.files.path

    # -------------------------------------------------------------------- what files say
    def _unreadable(self, path: Path, why: object) -> None:
        text = f"{type(why).__name__}: {why}" if isinstance(why, Exception) else str(why)
        self._problems.append(f"{path.name} is unreadable ({' '.join(text.split())[:200]})")

    @property
    def unreadable(self) -> str | None:
        """What of the run's files could not be read (corrupt ``metrics.json``, ``.hydra/``
        files); None when all could. Such a run's status is ``unreadable``."""
        if self.files is not None:
            self.metrics, self._hydra_config, self.overrides  # noqa: B018 - read them all once
        return "; ".join(self._problems) or None

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` ({} when absent or unreadable: see :attr:`unreadable`)."""
        if self.files is None:
            return {}
        try:
            found = self.files.read_metrics()
        except (OSError, ValueError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
            self._unreadable(self.files.metrics, exc)
            return {}
        problem = metrics_problem(found)
        if problem:
            self._unreadable(self.files.metrics, problem)
            return {}
        return found

    @cached_property
    def _hydra_config(self) -> dict[str, Any]:
        """``.hydra/config.yaml`` ({} when absent or unreadable: see :attr:`unreadable`)."""
        if self.files is None:
            return {}
        try:
            found = self.files.read_config()
        except (OSError, ValueError, yaml_error()) as exc:
            self._unreadable(self.files.hydra_config, exc)
            return {}
        if not isinstance(found, dict):
            self._unreadable(self.files.hydra_config, "not a mapping of settings")
            return {}
        return found

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The resolved config as a plain dict: Hydra's copy, else the checkpoint's ({} when
        unreadable: see :attr:`unreadable`)."""
        if self.files is None:
            return {}
        found = self._hydra_config
        if not found and self.checkpoint_path is not None and self.checkpoint_path.is_file():
            found = dict(self.checkpoint["config"])
        return found

    @cached_property
    def overrides(self) -> list[str]:
        if self._planned is not None:
            return self._planned[1]
        if self.files is None:
            return []
        try:
            found = self.files.read_overrides()
        except (OSError, ValueError, TypeError, yaml_error()) as exc:
            self._unreadable(self.files.hydra_overrides, exc)
            return []
        if not all(isinstance(o, str) for o in found):
            self._unreadable(self.files.hydra_overrides, "not a list of overrides")
            return []
        return found

    @property
    def status(self) -> str:
        if self.live_status is not None:
            return self.live_status
        if self.files is None:
            return MISSING
        if self.unreadable:
            return UNREADABLE
        return str(self.metrics.get("status", NOT_STARTED))

    @property
    def experiment(self) -> str:
        if self._planned is not None:
            return self._planned[0]
        return str(
            self.settings.get("experiment_name") or self.metrics.get("experiment", self.name)
        )

    @property
    def seed(self) -> int | None:
        """The run's ``random_seed`` (a planned run's from its overrides)."""
        if self._planned is not None:
            planned = [
                o.partition("=")[2] for o in self._planned[1] if o.startswith("random_seed=")
            ]
            return int(planned[0]) if planned and planned[0].isdigit() else None
        seed = self.settings.get("random_seed", self.metrics.get("seed"))
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    def result(self, split: str, key: str = "mae") -> float | None:
        """A final metric of a completed run (``metrics.json``), e.g. ``result("val")``."""
        value = self.metrics.get(split, {}).get(key) if self.status == COMPLETED else None
        return float(value) if value is not None else None

    @property
    def val_mae(self) -> float | None:
        return self.result("val")

    @cached_property
    def split(self) -> dict[str, list[str]]:
        return self.files.read_split() if self.files else {}

    @cached_property
    def history(self) -> list[dict[str, str]]:
        if self.files is None:
            raise RunError(f"run {self.name} has no history (it never started)")
        return self.files.read_history()

    def predictions(self, split: str) -> Predictions | None:
        return self.files.read_predictions(split) if self.files else None

    # ------------------------------------------------------------------------- the model
    @cached_property
    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint's contents, read with ``weights_only=True``."""
        from fusion_tuner.checkpoint import load_checkpoint

        if self.checkpoint_path is None:
            raise RunError(f"run {self.name} has no checkpoint")
        return load_checkpoint(self.checkpoint_path)

    @cached_property
    def config(self) -> Config:
        """The typed config the model was trained with (from the checkpoint)."""
        from fusion_tuner.checkpoint import config_from_dict

        return config_from_dict(self.checkpoint["config"], self.checkpoint_path)

    @property
    def data_info(self) -> dict[str, Any]:
        from fusion_tuner.checkpoint import check_data_info

        return check_data_info(self.checkpoint.get("data_info"), self.checkpoint_path or "")

    @cached_property
    def model(self) -> torch.nn.Module:
        """The checkpoint's model, rebuilt from the checkpoint alone, in eval mode.

        Raises:
            CheckpointError: weights that do not fit the architecture its config describes
                (a tampered checkpoint, or one from another version).
        """
        from fusion_tuner.models.builders import build_model

        try:
            model = build_model(self.config, self.data_info, pretrained_text=False)
            model.load_state_dict(self.checkpoint["model_state"])
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path}: its weights do not fit the model its config "
                f"describes ({type(exc).__name__}: {first[:300]}); the file was altered or "
                "written by another version"
            ) from None
        return model.eval()


def locate(path: str | Path, name: str | None = None) -> Run:
    """A run from its directory (model: its ``best_model.pt``) or from a checkpoint file (the
    file's folder is the run directory)."""
    p = Path(path)
    if p.is_dir():
        files = RunDir(p)
        if not files.best_checkpoint.is_file():
            raise RunError(
                f"{p} has no best_model.pt: is it a completed fusion_tuner run directory?"
            )
        return Run(p, name)
    if p.is_file():
        return Run(p.parent, name or p.parent.name, checkpoint=p)
    raise RunError(f"{p} is neither a run directory nor a checkpoint file")


def load_run(run_dir: str | Path, which: str = "best_model.pt") -> Run:
    """A run directory with its model rebuilt from ``which`` (``best_model.pt`` or ``last.pt``)."""
    run = Run(run_dir, checkpoint=Path(run_dir) / which)
    run.model  # noqa: B018 - load now, so that a broken checkpoint fails here
    return run
