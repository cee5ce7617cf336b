"""``OptunaSweeper``: a Hydra sweeper that runs an Optuna study through any Hydra launcher.

1. ``sweep`` reads the search space (``hydra.sweeper.params`` and the command line's sweep
   overrides, :mod:`fusion_tuner.search.space`) and checks the settings and every value of the
   space against the config before anything runs (exit status 2 on a mistake).
2. It opens (or continues) the study in the sweep directory's journal file, takes a lock on the
   sweep directory (one sweeper per search) and writes ``search.json`` and ``multirun.yaml``.
3. :class:`fusion_tuner.search.loop.SearchLoop` asks up to ``n_jobs`` trials at a time and
   launches them as one batch through ``self.launcher`` (basic: one after another in this
   process; ``hydra/launcher=local``: parallel processes; ``slurm``: one job array per batch),
   each into ``trial-NNNN/``, then tells the study what each run's ``metrics.json`` says.

The summary is written by ``python -m fusion_tuner`` once Hydra returns, also after failures.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

EXIT_REFUSED = 2  # a mistake in the search's settings: nothing ran (fusion_tuner.cli)
EXIT_FAILED = 1  # every trial failed: the search stopped early
LOCK_FILE = ".search.lock"
# the keys the sweeper sets in every trial's job (fusion_tuner.search.loop.TRIAL_KEYS)
TRIAL_KEYS = ("trial.number", "trial.study", "trial.storage")
_ABSENT = object()


class OptunaSweeper(Sweeper):
    """Hydra's sweeper interface over :mod:`fusion_tuner.search`; fields as in
    ``hydra_plugins.fusion_tuner_optuna.config.OptunaSweeperConf``."""

    def __init__(
        self,
        sampler: str,
        seed: int | None,
        n_startup_trials: int | None,
        direction: str,
        n_trials: int,
        n_jobs: int,
        pruner: Any,
        baseline_runs: int,
        study_name: str | None,
        params: dict[str, str] | None,
    ) -> None:
        from fusion_tuner.search.study import PrunerSpec, SamplerSpec

        super().__init__()
        self.sampler = SamplerSpec(sampler, seed, n_startup_trials)
        self.pruner = PrunerSpec(**OmegaConf.to_container(pruner)) if pruner else PrunerSpec()
        self.direction, self.n_trials, self.n_jobs = direction, n_trials, n_jobs
        self.baseline_runs, self.study_name = baseline_runs, study_name
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ----------------------------------------------------------------------------- sweep
    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        from fusion_tuner.errors import ConfigError
        from fusion_tuner.search.loop import SearchFailed, SearchLoop
        from fusion_tuner.search.space import base_values, parse_space

        assert self.config is not None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        space, grid, base, problems = None, None, None, []
        try:
            space = parse_space(self.params, arguments)
        except ConfigError as exc:
            problems += exc.problems
        problems += self._problems(space) + self._contract_problems()
        subdir = _command_subdir(self.config)
        if space is not None:
            try:
                grid = space.grid() if self.sampler.name == "grid" else None
            except ConfigError as exc:
                problems += exc.problems
            try:  # the baseline's point: trained first (baseline_runs), recognised in a grid
                base = base_values(self.config, space)
            except ConfigError as exc:
                if self.baseline_runs:
                    problems += exc.problems
            problems += self._probe(space)
            if subdir is not None and not problems:
                problems += self._subdir_problems(subdir, space)
        if problems:
            print(
                f"error: the search cannot start: {ConfigError(problems)}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(EXIT_REFUSED)
        assert space is not None
        seeds = [int(self.config.random_seed) + i for i in range(self.baseline_runs)]
        if grid is not None and base is not None and all(base[k] in v for k, v in grid.items()):
            seeds = seeds[1:]  # the grid trains the baseline's point with random_seed itself
        n_trials = self.n_trials
        # a grid holds its points and the baseline's extra seeds, no more
        points = None if grid is None else _grid_size(grid)
        max_trials = None if points is None else points + len(seeds)
        if max_trials is not None and n_trials > max_trials:
            n_trials = max_trials
            log.info(
                "the grid has %d points (and %d extra baseline seeds): n_trials %d -> %d",
                points,
                len(seeds),
                self.n_trials,
                n_trials,
            )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with SearchLock(sweep_dir):
            study = self._open(sweep_dir, space, grid, base, seeds, n_trials, max_trials)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            loop = SearchLoop(
                study,
                space,
                sweep_dir,
                self._launch,
                n_trials=n_trials,
                n_jobs=self.n_jobs,
                subdir=None if subdir is None else self._job_subdir,
                job_overrides=[_exclude_own_keys(self.config)],
            )
            log.info(
                "search %s: %d of %d trials already ended; %d in flight at once through %s",
                study.study_name,
                len(loop.finished()),
                n_trials,
                self.n_jobs,
                _launcher_name(self.config),
            )
            try:
                loop.run()
            except SearchFailed as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                raise SystemExit(EXIT_FAILED) from None
        return []

    def _launch(self, batch: list[list[str]], initial_job_idx: int) -> Sequence[Any]:
        self.validate_batch_is_legal(batch)
        return self.launcher.launch(batch, initial_job_idx=initial_job_idx)

    def _problems(self, space: Any) -> list[str]:
        """What is wrong with the sweeper's own settings (``space``: None when unreadable)."""
        from fusion_tuner.search.study import DIRECTIONS

        assert self.config is not None
        problems = self.sampler.problems() + self.pruner.problems()
        if self.direction not in DIRECTIONS:
            problems.append(f"hydra.sweeper.direction={self.direction!r}: minimize or maximize")
        if self.n_trials < 1:
            problems.append(f"hydra.sweeper.n_trials={self.n_trials}: must be >= 1")
        if self.n_jobs < 1:
            problems.append(f"hydra.sweeper.n_jobs={self.n_jobs}: must be >= 1")
        if not 0 <= self.baseline_runs <= self.n_trials:
            problems.append(
                f"hydra.sweeper.baseline_runs={self.baseline_runs}: must be within 0 .. n_trials "
                f"({self.n_trials})"
            )
        if self.baseline_runs > 1 and space is not None and "random_seed" in space.dimensions:
            problems.append(
                "hydra.sweeper.baseline_runs > 1 trains the baseline with several seeds, so "
                "random_seed cannot also be searched"
            )
        if self.config.hydra.launcher.get("detach"):
            problems.append(
                "hydra.launcher.detach=true: a search must wait for each batch of trials to ask "
                "for the next; drop detach (the runs would go on, but the study would not)"
            )
        return problems

    def _contract_problems(self) -> list[str]:
        """What the task's config lacks of what the sweeper sets in each trial (the README's
        "the sweeper's contract")."""
        assert self.config is not None
        problems = [
            f"{key}: not in the config; the sweeper sets it in every trial's job, so the task's "
            "config must declare it (trial: {number: null, study: null, storage: null})"
            for key in TRIAL_KEYS
            if OmegaConf.select(self.config, key, default=_ABSENT) is _ABSENT
        ]
        if self.baseline_runs:
            seed = OmegaConf.select(self.config, "random_seed", default=_ABSENT)
            if seed is _ABSENT or not isinstance(seed, int) or isinstance(seed, bool):
                problems.append(
                    f"random_seed: {'not in the config' if seed is _ABSENT else repr(seed)}; "
                    f"hydra.sweeper.baseline_runs={self.baseline_runs} seeds its baseline trials "
                    "from it, so the config needs an integer random_seed (or set "
                    "hydra.sweeper.baseline_runs=0)"
                )
        return problems

    def _job_subdir(self, overrides: list[str], num: int) -> str:
        """The run directory of a job, relative to the sweep directory: the command's
        ``hydra.sweep.subdir`` resolved in the job's config, as the launcher will."""
        from omegaconf import open_dict

        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg):
            cfg.hydra.job.num = num
        return str(cfg.hydra.sweep.subdir)

    def _subdir_problems(self, subdir: str, space: Any) -> list[str]:
        """The command's ``hydra.sweep.subdir`` must resolve before a trial runs (the sweeper
        reads each trial's result from that directory)."""
        assert self.config is not None
        probe = [*space.fixed, *(f"{k}=null" for k in TRIAL_KEYS), _exclude_own_keys(self.config)]
        try:
            got = self._job_subdir(probe, 0)
        except Exception as exc:  # an interpolation that only a running job knows
            return [
                f"hydra.sweep.subdir={subdir}: cannot be resolved before the trial runs "
                f"({_first_line(exc)}); the sweeper must know each trial's directory: use "
                "${hydra.job.num}, ${hydra.job.override_dirname} or the config's values"
            ]
        if Path(got).is_absolute() or ".." in Path(got).parts:
            return [f"hydra.sweep.subdir={subdir}: gives {got}, not a folder inside the sweep dir"]
        if too_long(got):
            return [
                f"hydra.sweep.subdir={subdir}: gives a folder name longer than {NAME_MAX} bytes "
                f"({got[:80]}...); exclude keys from it with "
                "hydra.job.config.override_dirname.exclude_keys=[...] or use ${hydra.job.num}"
            ]
        return []

    def _probe(self, space: Any) -> list[str]:
        """Compose the config at every choice and both ends of every range before any trial runs:
        an option that does not exist refuses the search; a value that breaks the config's rules
        is a warning (trials that draw it will fail, the others run). Returns the refusals."""
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        problems, warned = [], []
        for name, overrides in _probes(space):
            try:
                cfg = loader.load_sweep_config(self.config, overrides)
            except Exception as exc:  # Hydra's composition errors have many types
                problems.append(f"{name}: {_first_line(exc)}")
                continue
            if _is_fusion_tuner(cfg):  # another task's rules are its own business
                warned += [f"{name}: {p}" for p in _rule_problems(cfg)]
        for w in dict.fromkeys(warned):
            log.warning("trials that draw %s will fail", w)
        return problems

    def _open(
        self,
        sweep_dir: Path,
        space: Any,
        grid: dict[str, list[Any]] | None,
        base: dict[str, Any] | None,
        baseline_seeds: list[int],
        n_trials: int,
        max_trials: int | None,
    ) -> Any:
        """Create or load the study, set its sampler, queue the baseline trials of a new study
        and write ``search.json``."""
        from fusion_tuner.errors import ConfigError
        from fusion_tuner.search import JOURNAL_FILE
        from fusion_tuner.search.study import open_study

        assert self.config is not None
        journal = sweep_dir / JOURNAL_FILE
        new_journal = not journal.exists()
        try:
            study = open_study(sweep_dir, self.study_name, self.direction, self.pruner)
        except ConfigError as exc:
            print(f"error: the search cannot start: {exc}", file=sys.stderr, flush=True)
            if new_journal:  # a refused start leaves no study behind
                journal.unlink(missing_ok=True)
            raise SystemExit(EXIT_REFUSED) from None
        try:
            return self._set_up(
                study, sweep_dir, space, grid, base, baseline_seeds, n_trials, max_trials
            )
        except BaseException:
            if new_journal:  # nothing ran: no half-made study for a rerun to continue
                journal.unlink(missing_ok=True)
            raise

    def _set_up(
        self,
        study: Any,
        sweep_dir: Path,
        space: Any,
        grid: dict[str, list[Any]] | None,
        base: dict[str, Any] | None,
        baseline_seeds: list[int],
        n_trials: int,
        max_trials: int | None,
    ) -> Any:
        from optuna.distributions import distribution_to_json

        from fusion_tuner.search import JOURNAL_FILE
        from fusion_tuner.search.study import write_record

        assert self.config is not None
        n_existing = len(study.trials)
        study.sampler = self.sampler.build(grid, n_existing, parallel=self.n_jobs > 1)
        if n_existing == 0:
            for seed in baseline_seeds:
                assert base is not None
                study.enqueue_trial(base, user_attrs={"baseline": True, "random_seed": seed})
        write_record(
            sweep_dir,
            {
                "study": study.study_name,
                "journal": JOURNAL_FILE,
                "objective": "validation MAE (each run's best epoch)",
                "direction": self.direction,
                "n_trials": n_trials,
                "max_trials": max_trials,  # the grid's size (None: no limit)
                "n_jobs": self.n_jobs,
                "sampler": asdict(self.sampler),
                "pruner": asdict(self.pruner),
                "baseline_runs": self.baseline_runs,
                "base_values": base,
                "dimensions": [
                    {
                        "name": d.name,
                        "key": d.key,
                        "distribution": distribution_to_json(d.distribution),
                    }
                    for d in space.dimensions.values()
                ],
                "fixed": space.fixed,
                "search_keys": list(self.params),
                "launcher": _launcher_name(self.config),
                "command_overrides": _command_overrides(self.config),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        return study


class SearchLock:
    """One sweeper per search: a lock on ``<sweep dir>/.search.lock`` for the sweep's life (it
    dies with its process, so a killed sweep never blocks its rerun)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / LOCK_FILE
        self._lock: Any = None

    def __enter__(self) -> SearchLock:
        import os
        import socket

        from fusion_tuner.io import LockHeld, exclusive_lock

        lock = exclusive_lock(
            self.path, wait=False, owner=f"pid {os.getpid()} on host {socket.gethostname()}\n"
        )
        try:
            lock.__enter__()
        except LockHeld as held:
            print(
                f"error: the search in {self.path.parent} is being run by "
                f"{held.owner or 'another process'}; wait for it to end (a second sweeper "
                "would launch the same trials twice)",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(EXIT_REFUSED) from None
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(None, None, None)


def _probes(space: Any) -> list[tuple[str, list[str]]]:
    """(label, overrides) at every choice and both ends of every numeric dimension, the other
    dimensions at the config's own values (so a problem belongs to the probed value)."""
    from optuna.distributions import CategoricalDistribution

    out = []
    for d in space.dimensions.values():
        dist = d.distribution
        values = (
            dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)
        )
        out += [(d.override(v), [*space.fixed, d.override(v)]) for v in values]
    return out


def _rule_problems(cfg: DictConfig) -> list[str]:
    """The config's rule violations (``fusion_tuner.config.validate``), one line each."""
    from omegaconf import open_dict, read_write

    from fusion_tuner.config import validate
    from fusion_tuner.errors import ConfigError

    plain = cfg.copy()
    with read_write(plain), open_dict(plain):
        plain.pop("hydra", None)
    try:
        validate(OmegaConf.to_object(plain))  # type: ignore[arg-type]
    except ConfigError as exc:
        return exc.problems
    except Exception as exc:  # a wrong type: OmegaConf's validation error
        return [_first_line(exc)]
    return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _command_overrides(config: DictConfig) -> list[str]:
    """The command line's overrides as typed (interpolations such as ``${hydra.job.num}`` left
    unresolved), without the ones a rerun sets itself (the sweep directory, the number of
    trials, ``-m``)."""
    own = ("hydra.sweep.dir=", "hydra.sweeper.n_trials=", "hydra.mode=")
    given = OmegaConf.to_container(config.hydra.overrides, resolve=False)
    assert isinstance(given, dict)
    hydra = [str(o) for o in given["hydra"] if not str(o).startswith(own)]
    return [*map(str, given["task"]), *hydra]


NAME_MAX = 255  # bytes in one folder name (Linux)


def too_long(rel: str) -> bool:
    """True when a part of the relative path ``rel`` is longer than a folder name can be."""
    return any(len(part.encode()) > NAME_MAX for part in Path(rel).parts)


def _command_subdir(config: DictConfig) -> str | None:
    """The command's ``hydra.sweep.subdir`` as typed; None when it sets none (then each trial
    trains in ``trial-NNNN``)."""
    key = "hydra.sweep.subdir="
    given = [o for o in _command_overrides(config) if o.startswith(key)]
    return given[-1].removeprefix(key) if given else None


def _exclude_own_keys(config: DictConfig) -> str:
    """The override that keeps the sweeper's own keys (``trial.*``) out of each job's
    ``hydra.job.override_dirname``, beside the keys the config already excludes."""
    node = config.hydra.job.config.override_dirname
    given = OmegaConf.to_container(node, resolve=False)
    assert isinstance(given, dict)
    keys = list(dict.fromkeys([*map(str, given.get("exclude_keys") or []), *TRIAL_KEYS]))
    return f"hydra.job.config.override_dirname.exclude_keys=[{','.join(keys)}]"


def _is_fusion_tuner(cfg: DictConfig) -> bool:
    """True for a config of fusion_tuner's own schema (``fusion_tuner.config.Config``)."""
    from fusion_tuner.config import Config

    return OmegaConf.get_type(cfg) is Config


def _grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def _launcher_name(config: DictConfig) -> str:
    """How the trials of a batch run, in words."""
    name = str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
    return {
        "BasicLauncher": "the basic launcher (one trial at a time, in this process)",
        "LocalLauncher": "the local launcher (one process per trial)",
        "SlurmLauncher": "SLURM (one job array per batch)",
        "FusionSlurmLauncher": "SLURM (one job array per batch)",
    }.get(name, name or "the launcher")
