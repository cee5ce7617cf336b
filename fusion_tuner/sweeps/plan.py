"""A sweep's plan: every job's overrides, written to ``sweep_plan.json`` when the sweep starts,
so that runs that never started are listed, and run directories that would collide are refused.

The one use of Hydra's private API (the basic sweeper's job expansion) is :func:`expand_jobs`;
``tests/unit/test_sweep_plan.py`` fails loudly if a Hydra upgrade changes it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fusion_tuner.io import write_json

log = logging.getLogger(__name__)

PLAN_FILE = "sweep_plan.json"
# Keys every run directory name carries (hydra.sweep.subdir's default names them).
NAMED_BY_DEFAULT = ("experiment", "random_seed")


def expand_jobs(sweeper_params: dict[str, str], task_overrides: list[str]) -> list[list[str]]:
    """The override list of every job, as Hydra's basic sweeper expands the sweep.

    Args:
        sweeper_params: ``hydra.sweeper.params`` (e.g. a phase's experiment list).
        task_overrides: the command line's task overrides (``random_seed=1,2,3`` ...).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [f"{k}={v}" for k, v in sweeper_params.items()] + list(task_overrides)
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def plan_jobs(hydra_cfg: Any) -> list[list[str]]:
    """:func:`expand_jobs` of a multirun's ``hydra`` config node."""
    params = dict(hydra_cfg.sweeper.get("params") or {})
    return expand_jobs(params, list(hydra_cfg.overrides.task))


def check_subdir(jobs: list[list[str]], subdir: str) -> None:
    """Refuse, before any run starts, a sweep whose run directories would collide.

    Every key whose value varies across the jobs must appear in ``hydra.sweep.subdir`` (the
    default names experiment and seed), unless the subdir is unique per job anyway.
    """
    if "hydra.job.num" in subdir or "override_dirname" in subdir:
        return
    values: dict[str, set[str]] = {}
    for job in jobs:
        for o in job:
            key, _, value = o.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    unnamed = [
        k for k, v in values.items() if len(v) > 1 and k not in NAMED_BY_DEFAULT and k not in subdir
    ]
    if unnamed:
        example = "-".join(f"{k.split('.')[-1]}${{{k}}}" for k in unnamed)
        raise ValueError(
            f"this sweep varies {', '.join(unnamed)} but hydra.sweep.subdir={subdir!r} does not name "
            f"it, so runs would share a directory. Add it, e.g. "
            f"hydra.sweep.subdir='${{experiment_name}}-seed${{random_seed}}-{example}'"
        )


def job_experiment(job: list[str]) -> str:
    """The experiment a job runs (a job without an experiment override runs the baseline)."""
    for o in job:
        key, _, value = o.partition("=")
        if key.lstrip("+~") == "experiment":
            return value
    return "baseline"


def write_plan(sweep_dir: Path, jobs: list[list[str]]) -> None:
    """Record the grid's jobs; the rounds an earlier command into the same sweep directory
    planned (``rounds``, see :mod:`fusion_tuner.sweeps.rounds`) are kept."""
    path = Path(sweep_dir) / PLAN_FILE
    kept = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        kept = {k: old[k] for k in ("rounds", "confirm_jobs") if k in old}
    write_json(path, {"jobs": jobs, **kept})


def read_plan(sweep_dir: Path) -> list[list[str]] | None:
    """The planned jobs of a sweep (the grid, then any rounds of seeds), or None when it
    recorded no plan."""
    path = Path(sweep_dir) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        jobs = (
            list(rec["jobs"]) + list(rec.get("rounds") or []) + list(rec.get("confirm_jobs") or [])
        )
        if not all(isinstance(j, list) and all(isinstance(o, str) for o in j) for j in jobs):
            raise ValueError("not a list of override lists")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "%s is unreadable (%s: %s): runs that never started are not listed",
            path,
            type(exc).__name__,
            exc,
        )
        return None
    return jobs


def discard_unsubmitted(sweep_dir: Path) -> None:
    """Remove a refused sweep's directory if it holds nothing but the plan the sweep callback
    wrote when the multirun started (no run was submitted)."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.is_dir() and [p.name for p in sweep_dir.iterdir()] == [PLAN_FILE]:
        (sweep_dir / PLAN_FILE).unlink()
        sweep_dir.rmdir()
