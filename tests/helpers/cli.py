"""The test budget and the command runners shared by the test modules.

``TINY`` is ``budget=smoke`` (``conf/budget/smoke.yaml``: a slim model, 3 epochs, batches of 16)
on 60 demo crystals, with line progress and one thread: every component on, seconds per run.
Its epoch cap is lifted, so that a test's ``scheduler.epochs`` is the number of epochs run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

TINY = [
    "budget=smoke",
    "budget.max_epochs=null",
    "dataset.demo_size=60",
    "trainer.progress=line",
    "trainer.num_threads=1",
]
# sweeps and searches: two epochs per run
QUICK = [*TINY, "budget.max_epochs=2"]
SEARCH = ["hydra/sweeper=optuna", "hydra.sweeper.seed=0"]
# a learning rate of 10 diverges (validation MAE ~1e5 after one epoch); 0.001 learns
LR_SPACE = "scheduler.learning_rate=choice(0.001,10.0)"
# runs that learn something on the demo data (validation skill about 0.2-0.35) in seconds,
# and a rounds sweep of them in which nothing is decided at 2 seeds, so a second round runs
LEARNING = [
    "dataset.demo_size=60",
    "scheduler.epochs=12",
    "budget.max_epochs=12",
]  # slim, 12 epochs
ROUNDS = [
    "hydra/sweeper=rounds",
    "experiment=baseline,e09_no_cross_attention",
    "random_seed=1,2",
    "sweep.initial_seeds=2",
    "sweep.seeds_per_round=1",
    "sweep.max_seeds=3",
]
# Keys of metrics.json that differ between two runs of the same config.
TIMING = {"wall_time_s", "train_crystals_per_s", "pid", "attempts"}


def tiny_only(overrides: Sequence[str]) -> list[str]:
    """``overrides``, refused when one selects another budget: ``budget=full`` or ``budget=quick``
    after ``TINY`` would silently drop ``budget=smoke``'s slim model and train the plan's full one
    (keys such as ``budget.max_epochs=12`` are fine)."""
    other = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") == "budget"]
    assert not other, f"{other} replaces TINY's budget=smoke: set budget.* keys instead"
    return list(overrides)


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONUNBUFFERED": "1"}


def run_cli(run_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m fusion_tuner hydra.run.dir=RUN_DIR TINY... OVERRIDES...`` in a subprocess."""
    cmd = [sys.executable, "-m", "fusion_tuner", f"hydra.run.dir={run_dir}", *TINY]
    proc = subprocess.run(
        [*cmd, *tiny_only(overrides)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def module_cli(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS...`` in a subprocess (``fusion_tuner.analyze``, ...)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


def in_process(
    main: Callable[[Sequence[str]], int | None], *args: str
) -> subprocess.CompletedProcess:
    """Run a command's ``main(argv)`` in this process, as its console script would: the exit
    code (``SystemExit`` included), stdout and stderr, as a ``CompletedProcess``."""
    out, err = io.StringIO(), io.StringIO()
    argv = list(sys.argv)  # the training command hands its arguments to Hydra in sys.argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv[:] = argv
    return subprocess.CompletedProcess(list(args), int(code or 0), out.getvalue(), err.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------ sweeps
def sweep(sweep_dir: Path, *overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m fusion_tuner -m hydra.sweep.dir=SWEEP_DIR QUICK... OVERRIDES...``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fusion_tuner",
            "-m",
            f"hydra.sweep.dir={sweep_dir}",
            *QUICK,
            *tiny_only(overrides),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def summary_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as fh:
        return {r["run_dir"]: r for r in csv.DictReader(fh)}


# ---------------------------------------------------------------------------------- searches
def search_cmd(sweep_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fusion_tuner",
        "-m",
        f"hydra.sweep.dir={sweep_dir}",
        *QUICK,
        *SEARCH,
        *tiny_only(overrides),
    ]


def search(sweep_dir: Path, *overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        search_cmd(sweep_dir, *overrides),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def trials(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "search_summary.json").read_text())["trials"]


def trial_metrics(sweep_dir: Path, number: int) -> dict:
    return json.loads((sweep_dir / f"trial-{number:04d}" / "metrics.json").read_text())


def load_study(sweep_dir: Path):
    """The search's study, read from its journal file."""
    import optuna

    from fusion_tuner.search.study import journal_storage

    name = json.loads((sweep_dir / "search.json").read_text())["study"]
    return optuna.load_study(
        study_name=name, storage=journal_storage(sweep_dir / "optuna-journal.log")
    )


def study_states(sweep_dir: Path) -> dict[int, str]:
    return {t.number: t.state.name for t in load_study(sweep_dir).trials}


def log_span(run_dir: Path) -> tuple[float, float]:
    """First and last timestamp of a run's train.log, in seconds."""
    from datetime import datetime

    stamps = [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in (run_dir / "train.log").read_text().splitlines()
        if line.startswith("20")
    ]
    return min(stamps), max(stamps)


# ------------------------------------------------------------------------- killing and resume
def comparable_metrics(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k not in TIMING}


def comparable_history(run_dir: Path) -> list[dict]:
    with (run_dir / "history.csv").open() as fh:
        return [
            {k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(fh)
        ]


def start_until_epochs(run_dir: Path, *overrides: str, epochs: int = 2, timeout: float = 300):
    """Start ``python -m fusion_tuner`` into ``run_dir`` and return its process once
    ``history.csv`` holds ``epochs`` epochs (fails the test if the run ends first)."""
    cmd = [sys.executable, "-m", "fusion_tuner", f"hydra.run.dir={run_dir}", *TINY]
    cmd += tiny_only(overrides)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ
    )
    history = run_dir / "history.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) > epochs:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    return proc


# ---------------------------------------------------------------------------------- analysis
def analyze(*args: str) -> subprocess.CompletedProcess:
    """``python -m fusion_tuner.analyze ARGS...``, run in this process."""
    from fusion_tuner.cli.analyze import main

    return in_process(main, *args)


def analyze_ok(*args: str) -> subprocess.CompletedProcess:
    """:func:`analyze`, failing the test unless it exits 0."""
    out = analyze(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    return out
