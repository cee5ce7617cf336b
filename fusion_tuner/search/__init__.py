"""Search beyond the grid: an Optuna study over the plan's knobs, run as a Hydra sweep.

``python -m fusion_tuner -m +search=tier1`` selects the Optuna sweeper
(``hydra_plugins/fusion_tuner_optuna``, ``hydra/sweeper=optuna``) and a search space of
``conf/search/``. The pieces:

- :mod:`.space`: Hydra's sweep syntax (``interval``, ``tag(log, ...)``, ``choice``, ``range``)
  as Optuna distributions, and sampled values back as overrides.
- :mod:`.study`: the study in the sweep directory's journal file, its sampler and pruner.
- :mod:`.loop`: asking trials in batches of ``n_jobs``, launching them through any Hydra
  launcher, telling the results; resuming a search that was killed.
- :mod:`.pruning`: the run side: a trial reports validation MAE every epoch and stops when pruned.
- :mod:`.report`: the search summary, the best trial as a command and an experiment file, plots.

A search's sweep directory holds ``search.json`` (what was searched, how), the study's journal
``optuna-journal.log``, one run directory per trial (``trial-0007``) and the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECORD_FILE = "search.json"
JOURNAL_FILE = "optuna-journal.log"
SWEEPER_TARGET = "hydra_plugins.fusion_tuner_optuna.sweeper.OptunaSweeper"


def trial_dir_name(number: int) -> str:
    """The run directory of trial ``number`` inside the sweep directory: ``trial-0007``."""
    return f"trial-{number:04d}"


def trial_run_dir(trial: Any) -> str:
    """A trial's run directory, relative to the sweep directory: the one the sweeper recorded
    when it launched the trial (``hydra.sweep.subdir`` of the command, resolved for this trial),
    else ``trial-0007``."""
    return str(trial.user_attrs.get("run_dir") or trial_dir_name(trial.number))


def is_search_dir(sweep_dir: str | Path) -> bool:
    """True for the sweep directory of an Optuna search (it holds ``search.json``)."""
    return (Path(sweep_dir) / RECORD_FILE).is_file()


def is_search_config(hydra_cfg: Any) -> bool:
    """True when a multirun's ``hydra`` config node selects the Optuna sweeper."""
    return str(hydra_cfg.sweeper.get("_target_", "")) == SWEEPER_TARGET
