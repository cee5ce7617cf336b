"""Reading a plan's sweeps for the plan report (:mod:`fusion_tuner.sweeps.plan_report`).

Finds the sweep directories under the given paths (every directory that holds
``sweep_plan.json``, ``multirun.yaml`` or ``summary.json``, not inside another sweep), summarises
each afresh from its run directories (:func:`fusion_tuner.sweeps.summary.summarize`, with the
threshold its ``summary.json`` recorded) and loads the base sweeps their ``base_sweep`` links
name, even when not under the given paths. Reads only; what the report computes from the loaded
sweeps is :mod:`fusion_tuner.sweeps.plan_model`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from fusion_tuner.rundir import COMPLETED, Run
from fusion_tuner.sweeps.assess import is_confirmation
from fusion_tuner.sweeps.chain import SUMMARY_JSON
from fusion_tuner.sweeps.plan import PLAN_FILE
from fusion_tuner.sweeps.summary import Summary, load_runs, summarize

SWEEP_MARKERS = (PLAN_FILE, "multirun.yaml", SUMMARY_JSON)


class ReportError(ValueError):
    """Nothing to report on (no sweep found under the given paths)."""


@dataclass
class Sweep:
    """One sweep directory, summarised."""

    path: Path
    summary: Summary
    runs: list[Run]
    label: str = ""
    started: str = ""

    def arm(self, experiment: str, confirmation: bool = False) -> list[Run]:
        """Completed runs of ``experiment``.

        Args:
            experiment: the experiment's name.
            confirmation: False for the selecting runs, True for only the confirmation runs on
                fresh seeds (1001, ...).

        Returns:
            The completed runs of that kind, in the sweep's order.
        """
        return [
            r
            for r in self.runs
            if r.experiment == experiment
            and r.status == COMPLETED
            and is_confirmation(r) is confirmation
        ]


def is_sweep(path: Path) -> bool:
    """Returns whether ``path`` holds one of :data:`SWEEP_MARKERS`."""
    return any((path / m).is_file() for m in SWEEP_MARKERS)


def find_sweeps(paths: list[Path]) -> list[Path]:
    """Sweep directories at or under ``paths``.

    Returns:
        Each sweep directory once, resolved; run directories below a sweep are not searched.

    Raises:
        ReportError: a path is not a directory, or no sweep was found.
    """
    found: list[Path] = []
    for p in paths:
        if not p.is_dir():
            raise ReportError(f"{p} is not a directory")
        if is_sweep(p):
            found.append(p.resolve())
            continue
        for dirpath, dirnames, _ in os.walk(p):
            d = Path(dirpath)
            if is_sweep(d):
                found.append(d.resolve())
                dirnames[:] = []  # run directories below a sweep are not sweeps
            else:
                dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise ReportError(
            f"no sweep directory (holding {', '.join(SWEEP_MARKERS)}) under "
            f"{', '.join(map(str, paths))}"
        )
    return unique


def _threshold(path: Path, default: float) -> float:
    """Returns the threshold the sweep's ``summary.json`` recorded, else ``default``."""
    file = path / SUMMARY_JSON
    try:
        return float(json.loads(file.read_text())["threshold"]) if file.is_file() else default
    except (ValueError, KeyError, TypeError):
        return default


def _started(runs: list[Run], path: Path) -> str:
    """Returns when the sweep's first run started (ISO time), "" when no run recorded it."""
    starts = [
        r.metrics["attempts"][0]["started"]
        for r in runs
        if r.files is not None and r.metrics.get("attempts")
    ]
    return min(starts) if starts else ""


def load_sweep(path: Path, threshold: float | None, root: Path) -> Sweep:
    """Summarise one sweep directory.

    Args:
        path: the sweep directory.
        threshold: the relative change that counts (None: the sweep's own, else 0.02).
        root: the folder the report was asked for; the sweep's label is its path below it.

    Returns:
        The sweep, labelled (a sweep given itself is named as its W&B group does).
    """
    summary = summarize(path, threshold if threshold is not None else _threshold(path, 0.02))
    runs = load_runs(path)
    try:
        label = path.relative_to(root).as_posix()
    except ValueError:
        label = ""
    if label in ("", "."):  # the sweep itself was given: name it as its W&B group does
        label = "/".join(path.parts[-2:])
    return Sweep(path, summary, runs, label, _started(runs, path))


def load_plan(paths: list[Path], threshold: float | None = None) -> list[Sweep]:
    """Every sweep under ``paths`` plus the bases they chain from.

    Returns:
        The sweeps in the order they started (a sweep that recorded no start last).
    """
    dirs = find_sweeps(paths)
    root = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    sweeps: dict[Path, Sweep] = {}
    todo = list(dirs)
    while todo:
        d = todo.pop(0)
        if d in sweeps:
            continue
        sweeps[d] = load_sweep(d, threshold, root)
        base = sweeps[d].summary.base
        if base and base.get("sweep"):
            bp = Path(base["sweep"]).resolve()
            if bp not in sweeps and bp.is_dir():
                todo.append(bp)
    return sorted(sweeps.values(), key=lambda s: (s.started or "~", s.label))
