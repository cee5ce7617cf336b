"""The context a reader needs before any number of a sweep or a plan report: which data (and
whether it is synthetic), target and unit, crystals per split, the budget (and whether it caps
the runs), epochs and optimizer steps actually run, seeds per arm, wall time, and which code
made the runs.

:func:`build_context` computes it as data (a :class:`Context`) from the runs' ``metrics.json``
and ``.hydra/config.yaml``; :func:`context_banners` and :func:`context_items` turn it into
sentences that ``summary.md`` and the report render (Markdown and HTML).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner import __version__
from fusion_tuner.config import flatten
from fusion_tuner.provenance import git_revision
from fusion_tuner.rundir import COMPLETED, Run

# Units of the targets the package knows (JARVIS-DFT keys, the shared tables, the demo).
TARGET_UNITS = {
    "synthetic_gap": "eV, synthetic",
    "optb88vdw_bandgap": "eV",
    "mbj_bandgap": "eV",
    "hse_gap": "eV",
    "formation_energy_peratom": "eV/atom",
    "optb88vdw_total_energy": "eV/atom",
    "ehull": "eV/atom",
    "heat_ref": "eV/atom",
    "bulk_modulus_kv": "GPa",
    "shear_modulus_gv": "GPa",
    "epsx": "dimensionless",
    "exfoliation_energy": "meV/atom",
}
DEMO_BANNER = "synthetic demo data — says nothing about real materials"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Span:
    """Lowest and highest value over the runs (equal when every run agrees)."""

    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Span | None:
        return cls(min(values), max(values)) if values else None

    def text(self, digits: int = 0) -> str:
        f = f"{{:.{digits}f}}"
        lo, hi = f.format(self.low), f.format(self.high)
        return lo if lo == hi else f"{lo}–{hi}"


@dataclass(frozen=True)
class Context:
    """What a sweep's (or several sweeps') runs were: see the module docstring."""

    runs: int
    completed: int
    sources: list[str] = field(default_factory=list)
    demo: bool = False
    budgets: list[str] = field(default_factory=list)
    # budget names that cap epochs or crystals (quick, smoke, or any with a cap set)
    capping_budgets: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    crystals: dict[str, Span] = field(default_factory=dict)
    epochs: Span | None = None
    max_epochs: Span | None = None
    steps: Span | None = None
    seeds_per_arm: dict[str, int] = field(default_factory=dict)
    run_wall_s: Span | None = None
    median_run_wall_s: float | None = None
    total_wall_s: float | None = None
    # the code that made the runs (metrics.json's code_version and git_revision) ...
    run_versions: list[str] = field(default_factory=list)
    run_revisions: list[str] = field(default_factory=list)
    # ... and the code that wrote this page
    git_revision: str = "unknown"
    version: str = __version__


def _source(flat: dict[str, Any]) -> str:
    src = str(flat.get("dataset.source", "demo"))
    if src == "demo":
        size = flat.get("dataset.demo_size")
        return "demo (synthetic crystals" + (f", demo_size={size})" if size else ")")
    if src == "jarvis":
        return f"JARVIS-DFT {flat.get('dataset.name', '')}".strip()
    if src == "table":
        return f"table {Path(str(flat.get('dataset.path') or '?')).name}"
    if src == "folder":
        return f"folder {flat.get('dataset.root') or '?'}"
    return src


# budgets whose runs only check that every step runs; others that cap (e.g. cpu) are reduced
# profiles whose runs learn
PIPELINE_CHECKS = ("quick", "smoke")


def _caps(flat: dict[str, Any]) -> bool:
    return flat.get("budget.name") in PIPELINE_CHECKS or any(
        flat.get(k) is not None
        for k in ("budget.max_epochs", "budget.max_structures", "budget.width_scale")
    )


def _unique(values: list[Any]) -> list[str]:
    return [str(v) for v in dict.fromkeys(v for v in values if v not in (None, ""))]


def build_context(runs: list[Run], revision: str | None = None) -> Context:
    """The context of ``runs`` (missing, refused and unreadable runs count only as runs)."""
    usable = [r for r in runs if r.files is not None and not r.refused and not r.unreadable]
    flats = [flatten(r.settings) for r in usable if r.settings]
    done = [r for r in usable if r.status == COMPLETED]
    metrics = [r.metrics for r in done]
    targets = _unique([f.get("dataset.target") for f in flats] + [m.get("target") for m in metrics])
    crystals = {
        s: span
        for s in SPLITS
        if (
            span := Span.of(
                [m[s]["n"] for m in metrics if isinstance(m.get(s), dict) and "n" in m[s]]
            )
        )
    }
    walls = [float(m["wall_time_s"]) for m in metrics if m.get("wall_time_s") is not None]
    seeds = Counter(r.experiment for r in done if r.seed is not None)
    return Context(
        runs=len(runs),
        completed=len(done),
        sources=_unique([_source(f) for f in flats]),
        demo=any(f.get("dataset.source", "demo") == "demo" for f in flats),
        budgets=_unique([f.get("budget.name") for f in flats] + [m.get("budget") for m in metrics]),
        capping_budgets=_unique([f.get("budget.name", "?") for f in flats if _caps(f)]),
        targets=targets,
        units=[TARGET_UNITS.get(t, "unit unknown") for t in targets],
        crystals=crystals,
        epochs=Span.of([m["epochs_run"] for m in metrics if m.get("epochs_run") is not None]),
        max_epochs=Span.of([m["max_epochs"] for m in metrics if m.get("max_epochs") is not None]),
        steps=Span.of(
            [m["optimizer_steps"] for m in metrics if m.get("optimizer_steps") is not None]
        ),
        seeds_per_arm=dict(seeds),
        run_wall_s=Span.of(walls),
        median_run_wall_s=statistics.median(walls) if walls else None,
        total_wall_s=sum(walls) if walls else None,
        run_versions=_unique([m.get("code_version") for m in metrics]),
        run_revisions=_unique([m.get("git_revision") for m in metrics]),
        git_revision=revision if revision is not None else git_revision(),
        version=__version__,
    )


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def context_banners(ctx: Context) -> list[str]:
    """Warnings that change what every number below means (shown first, in bold)."""
    banners = []
    if ctx.demo:
        banners.append(DEMO_BANNER)
    checks = [b for b in ctx.capping_budgets if b in PIPELINE_CHECKS]
    reduced = [b for b in ctx.capping_budgets if b not in PIPELINE_CHECKS]
    if checks:
        banners.append(f"pipeline check — budget={'/'.join(checks)} caps epochs and crystals")
    if reduced:
        banners.append(
            f"reduced profile — budget={'/'.join(reduced)} caps epochs and crystals (and may "
            "scale the model's widths): its decisions are about this profile, not the plan's "
            "full settings"
        )
    return banners


def context_items(ctx: Context) -> list[tuple[str, str]]:
    """(label, value) lines of the header, in reading order."""
    unknown = "unknown (no run finished)"
    targets = (
        ", ".join(f"{t} ({u})" for t, u in zip(ctx.targets, ctx.units, strict=True)) or unknown
    )
    crystals = (
        " / ".join(f"{s} {ctx.crystals[s].text()}" for s in SPLITS if s in ctx.crystals) or unknown
    )
    epochs = unknown
    if ctx.epochs is not None:
        epochs = f"{ctx.epochs.text()} epochs run"
        if ctx.max_epochs is not None:
            epochs += f" (of at most {ctx.max_epochs.text()})"
        epochs += (
            f"; {ctx.steps.text()} optimizer steps"
            if ctx.steps is not None
            else "; optimizer steps not recorded (runs from an older version)"
        )
    seeds = (
        ", ".join(f"{e} {n}" for e, n in ctx.seeds_per_arm.items())
        if ctx.seeds_per_arm
        else unknown
    )
    wall = unknown
    if ctx.run_wall_s is not None and ctx.median_run_wall_s is not None:
        lo, hi = duration(ctx.run_wall_s.low), duration(ctx.run_wall_s.high)
        wall = (
            f"per run {duration(ctx.median_run_wall_s)}"
            + (f" median ({lo}–{hi})" if lo != hi else "")
            + f"; all runs together {duration(ctx.total_wall_s or 0.0)}"
        )
    return [
        ("data", ", ".join(ctx.sources) or "unknown"),
        ("target", targets),
        ("budget", ", ".join(ctx.budgets) or "unknown"),
        ("crystals", crystals),
        ("training", epochs),
        ("runs", f"{ctx.completed} of {ctx.runs} completed; seeds per arm: {seeds}"),
        ("wall time", wall),
        (
            "code",
            f"runs by fusion_tuner {', '.join(ctx.run_versions) or 'unknown'}, git "
            f"{', '.join(ctx.run_revisions) or 'not recorded'}; this page by fusion_tuner "
            f"{ctx.version}, git {ctx.git_revision}",
        ),
    ]


def context_markdown(ctx: Context) -> list[str]:
    """The header as Markdown lines (banners in bold, then one bullet per item)."""
    lines = []
    for banner in context_banners(ctx):
        lines += [f"**{banner}**", ""]
    lines += [f"- {label}: {value}" for label, value in context_items(ctx)]
    return lines
