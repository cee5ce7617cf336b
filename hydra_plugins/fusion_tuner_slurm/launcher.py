"""``FusionSlurmLauncher``: hydra-submitit-launcher's SLURM launcher that tells the user what the
cluster is doing.

1. ``setup`` (before the sweep directory exists): the preflight of :mod:`fusion_tuner.slurm.preflight`
   refuses runs that can never start, exit status 2 (``preflight=false`` skips it).
2. ``launch``: submits the array as submitit's launcher does, writes ``slurm_jobs.json`` into the
   sweep directory and prints each run's job id and log. With ``detach=true`` it returns here.
3. Otherwise it polls the array (:class:`fusion_tuner.slurm.monitor.ArrayMonitor`), printing a
   progress line every ``progress_interval_s`` (and a bar on a terminal); a pending reason that
   can never clear cancels the array and exits with status 3 (unless ``keep_waiting=true``).
   Once every run ended it collects the results as submitit's launcher does.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _submitit
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

OWN_FIELDS = ("preflight", "progress_interval_s", "keep_waiting", "detach")
EXIT_REFUSED = 2  # the preflight refused the sweep: nothing was submitted (fusion_tuner.cli)
EXIT_NEVER_STARTS = 3  # submitted, but a pending reason could never clear: cancelled


class FusionSlurmLauncher(_submitit.SlurmLauncher):
    """submitit's SLURM launcher with a preflight, live progress, cancellation and detaching."""

    def __init__(self, **params: Any) -> None:
        own = {k: params.pop(k) for k in OWN_FIELDS if k in params}
        super().__init__(**params)
        self.preflight = bool(own.get("preflight", True))
        self.progress_interval_s = float(own.get("progress_interval_s", 60.0))
        self.keep_waiting = bool(own.get("keep_waiting", False))
        self.detach = bool(own.get("detach", False))
        if self.progress_interval_s <= 0:
            raise ValueError(
                f"hydra.launcher.progress_interval_s={self.progress_interval_s:g}: must be > 0 "
                "(seconds between progress lines)"
            )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        if self.preflight:
            self._preflight()

    def _preflight(self) -> None:
        from fusion_tuner.slurm.cluster import SchedulerUnavailable, gather
        from fusion_tuner.slurm.preflight import Request, check, format_refusal

        request = Request.from_launcher(self.params)
        try:
            info = gather(need_accounting=True)
        except SchedulerUnavailable as exc:
            log.warning("SLURM preflight skipped: %s", exc)
            return
        findings = check(request, info)
        for w in findings.warnings:
            log.warning("SLURM preflight: %s", w)
        if findings.errors:
            from fusion_tuner.sweeps.plan import discard_unsubmitted

            assert self.config is not None
            discard_unsubmitted(Path(str(self.config.hydra.sweep.dir)))
            print(format_refusal(findings), file=sys.stderr, flush=True)
            raise SystemExit(EXIT_REFUSED)
        log.info(
            "SLURM preflight: one run (%s CPU, %s, %s GPU, %s) fits partition '%s'",
            request.cpus,
            f"{request.mem_mb / 1024:g} GB" if request.mem_mb is not None else "default memory",
            request.gpus,
            f"{request.time_min:g} min" if request.time_min is not None else "default time",
            findings.partition,
        )

    def _executor(self) -> Any:
        """submitit's executor with this launcher's parameters (as ``BaseSubmititLauncher.launch``)."""
        import submitit

        init_keys = {"max_num_timeout", "submitit_folder"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            **{
                f"{self._EXECUTOR}_max_num_timeout": v
                for k, v in self.params.items()
                if k == "max_num_timeout"
            },
        )
        baseparams = set(OmegaConf.structured(_submitit.BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in baseparams else f"{self._EXECUTOR}_{k}": v
                for k, v in self.params.items()
                if k not in init_keys
            }
        )
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from fusion_tuner.slurm.monitor import ArrayMonitor, NeverStarts, RunJob, terminal_stream
        from fusion_tuner.slurm.preflight import Request
        from fusion_tuner.slurm.record import read_record, write_record

        assert self.config is not None
        assert len(job_overrides) > 0
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        array_id = jobs[0].job_id.split("_")[0]
        runs = [
            RunJob(j.job_id, label, str(j.paths.stdout))
            for j, label in zip(jobs, _labels(job_overrides), strict=True)
        ]
        earlier = read_record(sweep_dir) if initial_job_idx > 0 else None  # an earlier batch
        record = {
            "array_job_id": array_id,
            "partition": self.params.get("partition"),
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "detached": self.detach,
            "cancelled": None,
            "jobs": [
                {"job_id": r.job_id, "overrides": list(o), "log": r.log}
                for r, o in zip(runs, job_overrides, strict=True)
            ],
        }
        if earlier is not None:
            record["jobs"] = earlier["jobs"] + record["jobs"]
        write_record(sweep_dir, record)
        width = max(len(r.label) for r in runs)
        log.info(
            "submitted SLURM job array %s (%s); job id, run, log:\n%s",
            array_id,
            "1 run" if len(runs) == 1 else f"{len(runs)} runs",
            "\n".join(f"  {r.job_id}  {r.label:<{width}}  {r.log}" for r in runs),
        )
        if self.detach:
            log.info(
                "detached: the runs go on without this process. Their state and the summary "
                "later: python -m fusion_tuner.summary %s ; cancel them: scancel %s",
                sweep_dir,
                array_id,
            )
            return []
        monitor = ArrayMonitor(
            array_id,
            runs,
            request=Request.from_launcher(self.params),
            progress_interval_s=self.progress_interval_s,
            keep_waiting=self.keep_waiting,
            stream=terminal_stream(),
        )
        try:
            monitor.wait(done=lambda: all(j.done() for j in jobs))
        except NeverStarts as exc:
            record["cancelled"] = {"reason": exc.reason, "message": str(exc)}
            write_record(sweep_dir, record)
            print(str(exc), file=sys.stderr, flush=True)
            raise SystemExit(EXIT_NEVER_STARTS) from None
        except KeyboardInterrupt:
            log.warning(
                "stopped waiting; the runs go on. State and summary later: "
                "python -m fusion_tuner.summary %s ; cancel them: scancel %s",
                sweep_dir,
                array_id,
            )
            raise
        return [j.results()[0] for j in jobs]


def _labels(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each job's overrides that not every job shares (all of them for a single job)."""
    lists = [filter_overrides(o) for o in job_overrides]
    common = set(lists[0]).intersection(*lists[1:]) if len(lists) > 1 else set()
    return [" ".join(o for o in lst if o not in common) for lst in lists]
