"""The sweeper's structured config, ``hydra/sweeper=fusion_optuna``;
``conf/hydra/sweeper/optuna.yaml`` documents every field and is what ``+search=...`` selects.

No ``from __future__ import annotations`` here: Hydra's plugin scanner executes this module
before it is in ``sys.modules``, where dataclasses cannot resolve string annotations."""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


@dataclass
class PrunerConf:
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


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.fusion_tuner_optuna.sweeper.OptunaSweeper"
    # tpe | random | cmaes | grid
    sampler: str = "tpe"
    # seeds the sampler (a resumed study: seed + the trials it already holds); null: unseeded
    seed: int | None = None
    # tpe / cmaes: random trials before the model takes over; null: Optuna's default
    n_startup_trials: int | None = None
    # minimize | maximize the objective, each run's validation MAE
    direction: str = "minimize"
    # trials the study holds when the search ends, counting earlier runs into this sweep dir
    n_trials: int = 20
    # trials in flight at once: one batch through the launcher (basic, local, slurm)
    n_jobs: int = 1
    pruner: PrunerConf = field(default_factory=PrunerConf)
    # train the config without the search's values as the first N trials, seeds random_seed,
    # random_seed+1, ...; N >= 2 also measures the seed noise the summary compares with
    baseline_runs: int = 0
    # null: the journal's one study, or a name from the sweep directory
    study_name: str | None = None
    # the search space, in Hydra's sweep syntax: key: interval(a,b) | tag(log, interval(a,b)) |
    # choice(a,b,...) | range(a,b[,step]); a plain value is a fixed override of every trial
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="fusion_optuna",
    node=OptunaSweeperConf(),
    provider="fusion_tuner",
)
