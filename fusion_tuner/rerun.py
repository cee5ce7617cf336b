"""The exact command that resumes a run or a sweep that stopped.

"Rerun the same command" is not enough: without ``hydra.run.dir`` (``hydra.sweep.dir`` for a
sweep) the same command starts afresh in a new timestamped folder. :func:`resume_command`
rebuilds the command from the arguments the CLI was started with (kept in ``ARGV_ENV`` so that
launcher subprocesses see them too), or from Hydra's record of the run's overrides, and pins the
directory.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

# The CLI's arguments (a JSON list), set by fusion_tuner.cli.train.main for everything it starts.
ARGV_ENV = "FUSION_TUNER_ARGV"

_MULTIRUN_FLAGS = ("-m", "--multirun")


def _cli_args() -> list[str] | None:
    raw = os.environ.get(ARGV_ENV)
    if not raw:
        return None
    try:
        args = json.loads(raw)
    except ValueError:
        return None
    return [str(a) for a in args] if isinstance(args, list) else None


def _hydra_state() -> tuple[list[str], bool, Path | None] | None:
    """The overrides, whether this is a multirun, and the sweep directory, from Hydra's globals
    (None outside a Hydra app)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        args = [*hc.overrides.hydra, *hc.overrides.task]
        return [str(a) for a in args], multirun, Path(str(hc.sweep.dir)) if multirun else None
    except Exception:  # a Hydra without these fields: fall back to the run's own record
        return None


def command(args: list[str], directory: Path, multirun: bool) -> str:
    """``python -m fusion_tuner ARGS`` with ``hydra.run.dir`` (or, for a multirun, ``-m`` and
    ``hydra.sweep.dir``) set to ``directory`` in place of any such argument in ``args``."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    kept = [
        a
        for a in args
        if a not in _MULTIRUN_FLAGS and not a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))
    ]
    words = (["-m"] if multirun else []) + kept + [f"{key}={Path(directory).resolve()}"]
    return "python -m fusion_tuner " + shlex.join(words)


def resume_command(run_dir: Path, *, sweep_dir: Path | None = None) -> str:
    """The command that resumes the run in ``run_dir`` (or, given ``sweep_dir`` or inside a
    multirun, the sweep it belongs to)."""
    args = _cli_args()
    state = _hydra_state()
    multirun = sweep_dir is not None
    if args is not None:
        multirun = multirun or any(a in _MULTIRUN_FLAGS for a in args)
    elif state is not None:
        args, multirun = state[0], multirun or state[1]
    else:
        args = _recorded_overrides(run_dir)
    if multirun and sweep_dir is None:
        sweep_dir = state[2] if state is not None and state[2] is not None else run_dir.parent
    return command(args, sweep_dir if multirun and sweep_dir is not None else run_dir, multirun)


def _recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides in the run's ``.hydra/overrides.yaml`` (none when it has no such file)."""
    import yaml

    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(a) for a in data] if isinstance(data, list) else []


def resume_hint(run_dir: Path | None = None) -> str:
    """``"rerun <command>"`` for the current run (from Hydra's globals or ``run_dir``), or
    ``"rerun the same command with hydra.run.dir set to its directory"`` when neither is known."""
    if run_dir is None:
        state = _hydra_state()
        if state is None:
            return "rerun the same command with hydra.run.dir set to the run's directory"
        from hydra.core.hydra_config import HydraConfig

        run_dir = Path(HydraConfig.get().runtime.output_dir)
    return f"rerun {resume_command(run_dir)}"
