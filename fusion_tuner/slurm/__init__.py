"""SLURM support for sweeps: a preflight check, live progress of the job array, and its record.

The Hydra launcher plugin ``hydra_plugins.fusion_tuner_slurm`` (``hydra/launcher=slurm`` and
``slurm_cpu``) drives these modules; they need only the SLURM client commands, no Hydra:

- :mod:`fusion_tuner.slurm.parse`: text of ``scontrol``/``squeue``/``sacct``/``sacctmgr`` to values.
- :mod:`fusion_tuner.slurm.cluster`: runs those commands (with a timeout) and collects the
  partitions, nodes, QOS and accounts a preflight needs.
- :mod:`fusion_tuner.slurm.preflight`: does one run's request fit the partition? Refusals name
  the ``hydra.launcher`` field and the largest value allowed.
- :mod:`fusion_tuner.slurm.states`: the state of each task of a job array (``sacct``, ``squeue``),
  the progress line and bar.
- :mod:`fusion_tuner.slurm.reasons`: pending reasons in plain words, which can never clear, and
  the override that fixes them.
- :mod:`fusion_tuner.slurm.monitor`: polls the array until it ends, prints progress, cancels it
  when its runs can never start.
- :mod:`fusion_tuner.slurm.record`: ``slurm_jobs.json`` in the sweep directory, so that
  ``python -m fusion_tuner.summary`` can show the live state of unfinished runs later.
"""
