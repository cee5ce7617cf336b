"""The rounds sweeper's structured config, ``hydra/sweeper=rounds``: the basic sweeper's fields.

No ``from __future__ import annotations`` here: Hydra's plugin scanner executes this module
before it is in ``sys.modules``, where dataclasses cannot resolve string annotations."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class RoundsSweeperConf:
    _target_: str = "hydra_plugins.fusion_tuner_rounds.sweeper.RoundsSweeper"
    # as the basic sweeper's: jobs per launch within the first round (null: all at once)
    max_batch_size: int | None = None
    # the grid, in Hydra's sweep syntax (as the basic sweeper's)
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="rounds", node=RoundsSweeperConf, provider="fusion_tuner"
)
