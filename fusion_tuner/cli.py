"""Command-line entry point: ``python -m fusion_tuner [hydra overrides]``.

The one module that touches Hydra's globals. It converts the composed config once into typed
dataclasses, validates it (before any data is touched) and trains into Hydra's output directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fusion_tuner.api import CONF_DIR, normalize_overrides
from fusion_tuner.config import Config, register_configs, validate

log = logging.getLogger("fusion_tuner")


# An absolute path: ``python -m fusion_tuner`` would resolve "../conf" as a Python package.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> float:
    from fusion_tuner.training.run import train

    typed: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode != RunMode.MULTIRUN:
        validate(typed)  # before anything is written
        return float(train(typed, run_dir)["val"]["mae"])
    # in a sweep, train() validates too, so a bad grid point is recorded as a failed run
    sweep = "/".join(Path(str(hc.sweep.dir)).parts[-2:])
    try:
        return float(train(typed, run_dir, sweep=sweep)["val"]["mae"])
    except Exception as exc:  # recorded in the run's metrics.json; the sweep goes on
        log.error(
            "run %s failed (%s: %s); the other runs go on", run_dir.name, type(exc).__name__, exc
        )
        return float("nan")


# Exit status of a sweep refused before any run was submitted (the sweep's subdir check, the
# SLURM launcher's preflight): there is nothing to summarise.
EXIT_REFUSED = 2


def _summarise_sweeps(refused: bool = False) -> bool:
    """Write the summary of every sweep this process ran; True if all their runs completed.

    Skipped for a sweep that was ``refused`` before submitting and for a detached SLURM sweep
    (its runs go on; the launcher printed how to summarise it later).
    """
    from fusion_tuner.slurm.record import is_detached
    from fusion_tuner.sweeps import ACTIVE_SWEEPS, write_summary

    ok = True
    while ACTIVE_SWEEPS:
        sweep_dir, threshold = ACTIVE_SWEEPS.pop(0)
        if refused or is_detached(sweep_dir):
            continue
        summary = write_summary(sweep_dir, threshold)
        bad = [r for r in summary.rows if r["status"] != "completed"]
        print((sweep_dir / "summary.md").read_text())
        print(
            f"summary: {sweep_dir / 'summary.md'} ({len(summary.rows)} runs, {len(bad)} not completed)"
        )
        ok = ok and not bad
    return ok


def normalize_args(args: list[str]) -> list[str]:
    """Put ``-m`` first (Hydra's parser needs it before the overrides; users write
    ``+phase=1 -m seed=1,2``) and quote numeric group options (see ``normalize_overrides``)."""
    flags = [a for a in args if a in ("-m", "--multirun")]
    return flags + normalize_overrides([a for a in args if a not in ("-m", "--multirun")])


def main() -> None:
    """Register the schema, hand over to Hydra (run or ``-m`` multirun), then summarise sweeps.

    A multirun exits non-zero when any of its runs failed or is missing; every run still ran.
    """
    register_configs()
    sys.argv[1:] = normalize_args(sys.argv[1:])
    code = 0
    try:
        _main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        if not _summarise_sweeps(refused=code == EXIT_REFUSED):
            code = code or 1
    if code:
        sys.exit(code)
