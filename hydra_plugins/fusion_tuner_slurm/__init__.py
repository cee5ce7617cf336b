"""fusion_tuner's SLURM launcher for Hydra: hydra-submitit-launcher's, plus a preflight check,
live progress of the job array, cancellation of runs that can never start, and detaching.

Hydra finds it by scanning the ``hydra_plugins`` namespace package (this directory has an
``__init__.py``; ``hydra_plugins/`` itself must not). The logic lives in :mod:`fusion_tuner.slurm`.
"""
