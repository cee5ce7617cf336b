"""``RoundsSweeper``: Hydra's basic sweeper, then rounds of seeds (see
:mod:`fusion_tuner.sweeps.rounds`)."""

from __future__ import annotations

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class RoundsSweeper(BasicSweeper):
    """The basic sweeper whose ``sweep`` runs the grid as the first round and then, while the
    sweep's decision procedure leaves experiments open, one launch per round of new seeds."""

    def sweep(self, arguments: list[str]) -> Any:
        from fusion_tuner.sweeps.rounds import run_rounds

        return run_rounds(self, arguments)
