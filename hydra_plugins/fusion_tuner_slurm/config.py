"""The launcher's structured config, ``hydra/launcher=fusion_slurm``: submitit's SLURM fields
plus four of its own. ``conf/hydra/launcher/slurm.yaml`` and ``slurm_cpu.yaml`` build on it.

No ``from __future__ import annotations`` here: Hydra's plugin scanner executes this module
before it is in ``sys.modules``, where dataclasses cannot resolve string annotations."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class FusionSlurmQueueConf(SlurmQueueConf):
    """submitit's SLURM fields (partition, cpus_per_task, mem_gb, timeout_min ...) and:"""

    _target_: str = "hydra_plugins.fusion_tuner_slurm.launcher.FusionSlurmLauncher"
    # check the partition's limits before submitting; refuse a run that can never start
    preflight: bool = True
    # seconds between progress lines while the submitting process waits
    progress_interval_s: float = 60.0
    # on a pending reason that can never clear: keep waiting (true) or cancel and fail (false)
    keep_waiting: bool = False
    # submit, record the job ids in the sweep dir and return at once; the array goes on
    detach: bool = False


ConfigStore.instance().store(
    group="hydra/launcher",
    name="fusion_slurm",
    node=FusionSlurmQueueConf(),
    provider="fusion_tuner",
)
