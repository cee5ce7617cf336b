"""fusion_tuner's Optuna sweeper for Hydra (``hydra/sweeper=optuna``): a search over the plan's
knobs on current Optuna, with pruning, a journal-file study in the sweep directory (shared by
parallel trials, locally or on SLURM, and continued by a rerun) and a summary.

Hydra finds it by scanning the ``hydra_plugins`` namespace package (this directory has an
``__init__.py``; ``hydra_plugins/`` itself must not). The logic lives in :mod:`fusion_tuner.search`.
"""
