"""Command-line entry point: ``python -m fusion_tuner [hydra overrides]``.

The one module that touches Hydra's globals. It converts the composed config once into typed
dataclasses (after applying ``base_sweep``'s winner, see :mod:`fusion_tuner.sweeps.chain`),
validates it (before any data is touched) and trains into Hydra's output directory.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from fusion_tuner.compose import normalize_overrides
from fusion_tuner.config import Config, register_configs, validate
from fusion_tuner.errors import USER_ERRORS, RunRefused, full_error, was_reported
from fusion_tuner.paths import CONF_DIR
from fusion_tuner.rerun import ARGV_ENV, command
from fusion_tuner.rundir import FAILED, HYDRA_SUBDIR, REFUSED, RunDir
from fusion_tuner.words import plural

log = logging.getLogger("fusion_tuner")

# The session file through which the sweep callback tells main() which sweeps ran.
SESSION_ENV = "FUSION_TUNER_SWEEP_SESSION"
# Exit status of an error the user caused (a wrong key, value, target, run directory, ...).
EXIT_USAGE = 2
# Exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def _typed(cfg: DictConfig) -> Config:
    """The job's typed config; with ``base_sweep`` first started from that sweep's winner (``cfg``
    then holds the values the run computes with, which is what ``.hydra/config.yaml`` records)."""
    if cfg.get("base_sweep"):
        from fusion_tuner.sweeps.chain import apply_base

        apply_base(cfg, list(HydraConfig.get().overrides.task))
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def _hydra_files(cfg: DictConfig) -> dict[str, str]:
    """What Hydra would write into ``.hydra/`` (``conf/config.yaml`` sets ``hydra.output_subdir``
    to null so that Hydra writes nothing before the run owns its directory)."""
    hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)  # as Hydra's run_job writes it
    with read_write(hydra_cfg.hydra):
        hydra_cfg.hydra.output_subdir = HYDRA_SUBDIR
    return {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(hydra_cfg),
        "overrides.yaml": OmegaConf.to_yaml(HydraConfig.get().overrides.task),
    }


# An absolute path: ``python -m fusion_tuner`` would resolve "../conf" as a Python package.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _main(cfg: DictConfig) -> float:
    from fusion_tuner.training.run import train

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)

    def write_hydra_files(files: RunDir) -> None:  # once the run owns its directory
        files.write_hydra_files(_hydra_files(cfg))
        if hc.mode == RunMode.MULTIRUN:
            files.clear_refusal()

    if hc.mode != RunMode.MULTIRUN:
        try:
            typed = validate(_typed(cfg))  # before anything is written
            return float(train(typed, run_dir, on_accept=write_hydra_files)["val"]["mae"])
        except USER_ERRORS as exc:  # the message, exit 2: no traceback (Hydra's is exit 1)
            if full_error():
                raise
            if not was_reported(exc):
                print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
    # in a sweep, train() validates too, so a bad grid point is recorded as a failed run
    sweep = "/".join(Path(str(hc.sweep.dir)).parts[-2:])
    files = RunDir(run_dir)
    try:
        typed = _typed(cfg)
        metrics = train(typed, run_dir, sweep=sweep, on_accept=write_hydra_files)
        files.clear_refusal()  # trained, or already complete with this config
        return float(metrics["val"]["mae"])
    except RunRefused as exc:  # the directory's files stay the owner's; the sweep records it
        files.record_refusal(list(hc.overrides.task), str(exc))
        log.error("run %s refused: %s; the other runs go on", run_dir.name, exc)
        return float("nan")
    except Exception as exc:  # recorded in the run's metrics.json; the sweep goes on
        if not files.metrics.is_file():  # failed before train() started: the folder is ours
            files.write_metrics({"status": FAILED, "error": f"{type(exc).__name__}: {exc}"})
            if not files.hydra_config.is_file():
                write_hydra_files(files)
        log.error(
            "run %s failed (%s: %s); the other runs go on", run_dir.name, type(exc).__name__, exc
        )
        return float("nan")


# Exit status of a sweep refused before any run was submitted (the sweep's subdir check, the
# SLURM launcher's preflight): there is nothing to summarise.
EXIT_REFUSED = 2


def _summarise_sweeps(
    session_file: Path, refused: bool = False, args: list[str] | None = None
) -> bool:
    """Write the summary of every sweep recorded in ``session_file``; True if all their runs
    completed.

    Skipped for a sweep that was ``refused`` before submitting and for a detached SLURM sweep
    (its runs go on; the launcher printed how to summarise it later).
    """
    from fusion_tuner.launch import env_rank
    from fusion_tuner.search import is_search_dir
    from fusion_tuner.slurm.record import is_detached
    from fusion_tuner.sweeps.callback import read_session, session_searches
    from fusion_tuner.sweeps.summary_files import write_summary

    if env_rank() != 0:  # a torchrun/srun rank other than 0: rank 0 writes the summaries
        return True
    ok = True
    searches = session_searches(session_file)
    for sweep_dir, threshold in read_session(session_file):
        if refused or is_detached(sweep_dir):
            continue
        if is_search_dir(sweep_dir):  # an Optuna search writes its own summary
            done = _summarise_search(sweep_dir)
            if not done and args is not None:
                print(f"to resume it, rerun {command(args, sweep_dir, True)}")
            ok = done and ok
            continue
        if sweep_dir in searches:  # it stopped before it recorded itself (search.json)
            print(
                f"the search in {sweep_dir} stopped before its first trial (see the error "
                "above): nothing to summarise",
                file=sys.stderr,
            )
            ok = False
            continue
        summary = write_summary(sweep_dir, threshold)
        bad = [r for r in summary.rows if r["status"] != "completed"]
        n_refused = sum(r["status"] == REFUSED for r in bad)
        print((sweep_dir / "summary.md").read_text())
        print(
            f"summary: {sweep_dir / 'summary.md'} and summary.json ({plural(len(summary.rows), 'run')}, "
            f"{len(bad)} not completed"
            + (
                f", {n_refused} refused: their directories hold runs of another config or of "
                "another live process; use a new hydra.sweep.dir"
                if n_refused
                else ""
            )
            + ")"
        )
        if args is not None and len(bad) > n_refused:
            print(f"to complete the runs not completed, rerun {command(args, sweep_dir, True)}")
        ok = ok and not bad
    return ok


def _summarise_search(sweep_dir: Path) -> bool:
    """Write and print a search's summary; True when it reached its number of trials with one
    completed at least and none left unfinished (failed trials do not fail the command)."""
    from fusion_tuner.search.search_summary import SUMMARY_MD, write_search_summary

    summary = write_search_summary(sweep_dir)
    print((sweep_dir / SUMMARY_MD).read_text())
    c = summary.counts
    print(
        f"search summary: {sweep_dir / SUMMARY_MD} ({c['completed']} completed, {c['pruned']} "
        f"pruned, {c['failed']} failed, {c['unfinished']} unfinished of "
        f"{plural(summary.record['n_trials'], 'trial')})"
    )
    return summary.done


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def normalize_args(args: list[str]) -> list[str]:
    """Put ``-m`` first (Hydra's parser needs it before the overrides; users write
    ``+phase=1 -m seed=1,2``) and quote numeric group options (see ``normalize_overrides``)."""
    flags = [a for a in args if a in ("-m", "--multirun")]
    return flags + normalize_overrides([a for a in args if a not in ("-m", "--multirun")])


def preflight(args: list[str]) -> int | None:
    """What to do before Hydra sees ``args``: print our ``--help``, or refuse unknown keys and
    argparse habits (exit status 2). None: go on."""
    from fusion_tuner.cli.help import argparse_habit, help_text
    from fusion_tuner.compose import check_override_keys, schema_keys
    from fusion_tuner.errors import ConfigError
    from fusion_tuner.paths import conf_dir, config_groups

    if "--help" in args or "-h" in args:
        print(help_text(conf_dir()))
        return 0
    habit = argparse_habit(args, config_groups(), schema_keys())
    if habit:
        print(f"error: {habit}", file=sys.stderr)
        return 2
    from hydra._internal.utils import get_args_parser  # Hydra's own command-line parser

    known, _ = get_args_parser().parse_known_args(args)
    try:
        check_override_keys(known.overrides or [])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return None


def main() -> None:
    """Register the schema, hand over to Hydra (run or ``-m`` multirun), then summarise sweeps.

    A multirun exits non-zero when any of its runs failed or is missing; every run still ran.
    """
    register_configs()
    sys.argv[1:] = normalize_args(sys.argv[1:])
    stop = preflight(sys.argv[1:])
    if stop is not None:
        sys.exit(stop)
    with tempfile.TemporaryDirectory(prefix="fusion_tuner-") as tmp:
        session = Path(tmp) / "sweeps.jsonl"
        previous = os.environ.get(SESSION_ENV)
        previous_argv = os.environ.get(ARGV_ENV)
        os.environ[SESSION_ENV] = str(session)  # read by conf/config.yaml's sweep callback
        os.environ[ARGV_ENV] = json.dumps(sys.argv[1:])  # for the resume commands it prints
        code = 0
        try:
            _main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if code == 1 and isinstance(exc.__context__, CompactHydraException):
                # Hydra could not compose the command line's config (an unknown group option,
                # a value of the wrong type, a bad override): it printed why; the user's error
                code = EXIT_USAGE
        except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback
            if full_error():
                raise
            if not was_reported(exc):
                print("interrupted (Ctrl-C)", file=sys.stderr)
            code = EXIT_INTERRUPTED
        finally:
            _restore_env(SESSION_ENV, previous)
            _restore_env(ARGV_ENV, previous_argv)
            if not _summarise_sweeps(session, code == EXIT_REFUSED, sys.argv[1:]):
                code = code or 1
    if code:
        sys.exit(code)
