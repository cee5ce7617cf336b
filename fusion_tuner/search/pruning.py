"""The run side of a search: a trial reports its validation MAE to the study every epoch and
stops when the study's pruner says so.

The run may be in its own process or on another node (a local or SLURM launcher): it finds its
trial in the study's journal file from ``trial.storage``, ``trial.study`` and ``trial.number``
(set by the sweeper) and reports there. A pruned run ends like a completed one (its best model
evaluated on every split, predictions, curves) with ``stop_reason: pruned``; the sweeper reads
that from ``metrics.json`` and tells the study the trial was pruned.
"""

from __future__ import annotations

import logging
from typing import Any

from fusion_tuner.config import TrialConfig
from fusion_tuner.training.epoch import EpochRecord

log = logging.getLogger("fusion_tuner")

PRUNED = "pruned"


class TrialReporter:
    """An epoch hook of the :class:`~fusion_tuner.training.trainer.Trainer` for a search trial.

    Args:
        trial: the ``optuna.trial.Trial`` of this run (see :func:`.study.load_trial`).
        cfg: the run's ``trial`` settings.
    """

    def __init__(self, trial: Any, cfg: TrialConfig) -> None:
        from fusion_tuner.search.space import config_values

        self.trial = trial
        self.cfg = cfg
        # the values the run's config holds (floats as the sweeper wrote them into overrides)
        self.params: dict[str, Any] = config_values(trial.params, trial.distributions)
        self.pruned_at: int | None = None
        self.active = True

    @classmethod
    def from_config(cls, cfg: TrialConfig) -> TrialReporter | None:
        """The reporter of a search trial; None for a run that is not one (``trial.number``
        unset)."""
        if cfg.number is None:
            return None
        from fusion_tuner.search.study import load_trial

        assert cfg.storage is not None and cfg.study is not None  # config.validate checks
        return cls(load_trial(cfg.storage, cfg.study, cfg.number), cfg)

    def __call__(self, record: EpochRecord) -> str | None:
        """Report the epoch's validation MAE; ``"pruned"`` when the trial should stop."""
        from optuna.exceptions import UpdateFinishedTrialError

        if not self.active:
            return None
        try:
            self.trial.report(float(record.val_mae), record.epoch)
            prune = self.trial.should_prune()
        except UpdateFinishedTrialError:
            # the sweeper already ended this trial (e.g. it gave up on a run it thought dead)
            log.warning(
                "trial %d is already finished in study %r; training goes on without reporting",
                self.cfg.number,
                self.cfg.study,
            )
            self.active = False
            return None
        if not prune:
            return None
        self.pruned_at = record.epoch
        log.info(
            "trial %d pruned at epoch %d: validation MAE %.4f is worse than the study's pruner "
            "allows; the run stops here and keeps its best model",
            self.cfg.number,
            record.epoch,
            record.val_mae,
        )
        return PRUNED

    def record(self) -> dict[str, Any]:
        """What ``metrics.json`` keeps under ``trial``."""
        out: dict[str, Any] = {
            "number": self.cfg.number,
            "study": self.cfg.study,
            "params": self.params,
        }
        if self.pruned_at is not None:
            out["pruned_at_epoch"] = self.pruned_at
        return out
