"""fusion_tuner's rounds sweeper for Hydra (``hydra/sweeper=rounds``, selected by ``+phase=N``):
the basic sweeper's grid as the first round, then rounds of seeds for the experiments whose
decision is still open, each round one launch through any Hydra launcher.

Hydra finds it by scanning the ``hydra_plugins`` namespace package (this directory has an
``__init__.py``; ``hydra_plugins/`` itself must not). The logic lives in
:mod:`fusion_tuner.sweeps.rounds`.
"""
