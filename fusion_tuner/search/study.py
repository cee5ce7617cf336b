"""The study of a search: a journal file in the sweep directory, its sampler and its pruner.

Optuna's journal file storage appends one line per operation under a lock that works on shared
(NFS) file systems, so the sweeper and trials running as SLURM array tasks on other nodes all
use the same study. Rerunning the same command into the same sweep directory loads the study
again and goes on. The pruner is stored in the study (``study.user_attrs["pruner"]``), so a
trial's run, in its own process, prunes by the rule the sweeper was given.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fusion_tuner.errors import ConfigError
from fusion_tuner.io import write_json
from fusion_tuner.search import JOURNAL_FILE, RECORD_FILE

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("none", "median", "asha")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class PrunerSpec:
    """``hydra.sweeper.pruner``: which trials stop early (see ``conf/hydra/sweeper/optuna.yaml``)."""

    # none | median | asha (asynchronous successive halving)
    name: str = "none"
    # median: completed trials needed before any trial is pruned
    n_startup_trials: int = 2
    # median: the first epoch at which a trial can be pruned (0 and 1: epoch 1)
    n_warmup_steps: int = 1
    # asha: epochs a trial trains before its first comparison
    min_resource: int = 1
    # asha: 1 / reduction_factor of the trials go on at each rung
    reduction_factor: int = 3

    def problems(self) -> list[str]:
        out = []
        if self.name not in PRUNERS:
            out.append(
                f"hydra.sweeper.pruner.name={self.name!r}: must be one of {', '.join(PRUNERS)}"
            )
        for key, lo in (
            ("n_startup_trials", 0),
            ("n_warmup_steps", 0),
            ("min_resource", 1),
            ("reduction_factor", 2),
        ):
            if getattr(self, key) < lo:
                out.append(f"hydra.sweeper.pruner.{key}={getattr(self, key)}: must be >= {lo}")
        return out

    def build(self) -> Any:
        import optuna

        if self.name == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps
            )
        if self.name == "asha":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=self.min_resource, reduction_factor=self.reduction_factor
            )
        return optuna.pruners.NopPruner()

    def describe(self) -> str:
        if self.name == "median":
            return (
                f"median (a trial stops when its validation MAE at an epoch is worse than the "
                f"median of completed trials at that epoch; after {self.n_startup_trials} "
                f"completed trials and from epoch {max(1, self.n_warmup_steps)})"
            )
        if self.name == "asha":
            return (
                f"asha (successive halving: at epochs {self.min_resource}, "
                f"{self.min_resource * self.reduction_factor}, ... only the best "
                f"1/{self.reduction_factor} of the trials that reached it go on)"
            )
        return "none"


@dataclass(frozen=True)
class SamplerSpec:
    """How the next trial's parameters are chosen."""

    # tpe | random | cmaes | grid
    name: str = "tpe"
    # None: unseeded
    seed: int | None = None
    # tpe / cmaes: random trials before the model takes over (None: Optuna's default)
    n_startup_trials: int | None = None

    def problems(self) -> list[str]:
        out = []
        if self.name not in SAMPLERS:
            out.append(f"hydra.sweeper.sampler={self.name!r}: must be one of {', '.join(SAMPLERS)}")
        if self.n_startup_trials is not None and self.n_startup_trials < 0:
            out.append(f"hydra.sweeper.n_startup_trials={self.n_startup_trials}: must be >= 0")
        return out

    def build(self, grid: dict[str, list[Any]] | None, n_existing: int, parallel: bool) -> Any:
        """The sampler; on a resumed study its seed is ``seed + n_existing`` so that it does not
        draw again the points of the first run of the search.

        Args:
            grid: the values of every dimension (grid sampler only).
            n_existing: trials already in the study.
            parallel: several trials are asked before any is told (TPE then lies that
                running trials ended with the worst value seen, to spread them out).
        """
        import optuna

        seed = None if self.seed is None else self.seed + n_existing
        startup = (
            {} if self.n_startup_trials is None else {"n_startup_trials": self.n_startup_trials}
        )
        if self.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.name == "grid":
            assert grid is not None
            return _grid_sampler(grid, seed)
        if self.name == "cmaes":
            try:
                import cmaes  # noqa: F401 - Optuna's CMA-ES sampler needs it
            except ImportError:
                raise ConfigError(
                    ["hydra.sweeper.sampler=cmaes needs the cmaes package: pip install cmaes"]
                ) from None
            return optuna.samplers.CmaEsSampler(seed=seed, **startup)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel, **startup)


def _grid_sampler(grid: dict[str, list[Any]], seed: int | None) -> Any:
    """Optuna's grid sampler without its ``study.stop()`` once the grid is exhausted (that works
    only inside ``study.optimize`` and raises in ask-and-tell; the search loop counts trials)."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return GridSampler(grid, seed=seed)


def journal_storage(path: str | Path) -> Any:
    """Optuna's journal file storage on ``path`` (created on first write)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def journal_path(sweep_dir: str | Path) -> Path:
    return Path(sweep_dir).resolve() / JOURNAL_FILE


def check_journal(path: str | Path, repair: bool = True) -> Path | None:
    """Check the journal at ``path`` line by line before the study is loaded.

    A last line without its newline is what a kill or a full disk mid-append leaves (Optuna
    skips it when reading, but the next append would be glued onto it and make the journal
    unreadable for good): with ``repair`` it is cut off, under the journal's own lock, after
    the whole file was copied to ``<journal>.torn-<time>``, whose path is returned (None when
    nothing was repaired).

    Raises:
        ConfigError: a line before the last is no JSON record (the journal is corrupt), naming
            the file and the line.
    """
    import json
    import shutil
    import time

    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    backup = None
    lock = JournalFileSymlinkLock(str(path))  # the lock Optuna's appends take
    lock.acquire()
    try:
        data = path.read_bytes()
        if repair and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copyfile(path, backup)
            os.truncate(path, keep)
            log.warning(
                "%s ended in a torn line (%d bytes without a newline: an append cut off by a kill "
                "or a full disk); removed it, the original is kept as %s",
                path,
                len(data) - keep,
                backup,
            )
            data = data[:keep]
    finally:
        lock.release()
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):  # the last piece is "" or a torn tail
        try:
            json.loads(line)
        except ValueError as exc:
            raise ConfigError(
                [
                    f"{path}, line {number} of {len(lines) - 1}: not a JSON record "
                    f"({type(exc).__name__}: {exc}); the search journal is corrupt. Restore it "
                    "from a copy, or start the search again in a new hydra.sweep.dir"
                ]
            ) from None
    return backup


def study_name_for(storage: Any, requested: str | None, sweep_dir: Path) -> str:
    """The study to use: ``requested``; else the journal's one study; else a name from the
    sweep directory (``tier1/2026-11-30_08-00-00``).

    Raises:
        ConfigError: the journal holds several studies and none was named.
    """
    import optuna

    if requested:
        return requested
    names = optuna.get_all_study_names(storage)
    if len(names) == 1:
        return names[0]
    if len(names) > 1:
        raise ConfigError(
            [
                f"{journal_path(sweep_dir)} holds studies {names}: name one, hydra.sweeper.study_name=..."
            ]
        )
    resolved = Path(sweep_dir).resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def open_study(sweep_dir: Path, study_name: str | None, direction: str, pruner: PrunerSpec) -> Any:
    """Create the study in ``sweep_dir``'s journal, or load it to continue.

    Raises:
        ConfigError: a loaded study optimises in the other direction.
    """
    import optuna

    check_journal(journal_path(sweep_dir))
    storage = journal_storage(journal_path(sweep_dir))
    name = study_name_for(storage, study_name, sweep_dir)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        pruner=pruner.build(),
        load_if_exists=True,
    )
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(
            [
                f"hydra.sweeper.direction={direction}, but the study {name!r} in {sweep_dir} "
                f"was started to {stored}; keep {stored} or use a new sweep directory"
            ]
        )
    study.set_user_attr("pruner", asdict(pruner))
    return study


def load_trial(storage_path: str, study_name: str, number: int) -> Any:
    """Trial ``number`` of a study, in a process other than the sweeper's (a trial's run), with
    the study's pruner. ``trial.report`` / ``trial.should_prune`` then work across processes."""
    import optuna

    storage = journal_storage(storage_path)
    study_id = storage.get_study_id_from_name(study_name)
    attrs = storage.get_study_user_attrs(study_id)
    pruner = PrunerSpec(**attrs.get("pruner", {})).build()
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id)


def write_record(sweep_dir: Path, record: dict[str, Any]) -> None:
    """``search.json``: what the search samples and how (read by its summary)."""
    write_json(Path(sweep_dir) / RECORD_FILE, record)


def read_record(sweep_dir: Path) -> dict[str, Any]:
    import json

    path = Path(sweep_dir) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {sweep_dir} is not the directory of a search")
    return json.loads(path.read_text())
