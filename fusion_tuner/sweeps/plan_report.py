"""One report for the whole plan: ``python -m fusion_tuner.report outputs/multirun/``.

Reads sweep directories only (it never writes into them) and writes into ``--out``
(default ``<root>/plan_report/``): ``report.html`` (self-contained: figures as base64 PNG,
inline CSS, no script), ``report.md`` (the Markdown twin, figures as PNG files beside it),
``report.json`` (the numbers) and the CKA outputs under ``cka/``.

* **Context** first (:mod:`fusion_tuner.sweeps.context`): data (a banner for synthetic demo
  data and for a budget that caps the runs), target and unit, crystals per split, epochs and
  optimizer steps, seeds per arm, wall time, and the code of the runs and of the page.
* **References**: the training-mean predictor's validation and test MAE beside every MAE, each
  arm's skill and R²; arms that learned nothing are marked (and a path step that learned
  nothing gets a banner; its gap ratio is not read as met).
* **Sweeps**: every directory under the given paths that holds ``sweep_plan.json``,
  ``multirun.yaml`` or ``summary.json``; each is summarised afresh from its run directories
  (:func:`fusion_tuner.sweeps.summary.summarize`, with the threshold its ``summary.json``
  recorded), ordered by when its first run started. Base sweeps named by ``base_sweep`` are
  loaded even when not under the given paths.
* **The path**: the chain of ``base_sweep`` links that ends in the latest sweep with a baseline,
  from the original baseline (the first sweep's baseline runs) through each sweep's ✅ winner
  (a sweep without one keeps the configuration, shown by its baseline runs), with validation
  and test MAE and gap ratio (mean ± sd over seeds) at each step. The last step is the best
  configuration.
* **The plan's success criteria** (``tuning-plan.md``, "How each run is judged") for the best
  configuration against the original baseline: validation MAE lower (the 95% interval of the
  change, by :func:`fusion_tuner.decision.decide`, entirely below 0; on the winner's
  confirmation runs on fresh seeds when there are any, never on the runs that selected it, with
  their test MAE; the path holds only confirmed winners, as chaining does); train–validation gap
  ratio below 2 (mean over seeds); and CKA between the two checkpoints of the lowest common seed
  on the test split (:func:`fusion_tuner.analysis.cka.run_cka`, debiased linear CKA of
  same-named stages): ``text_fine`` in 0.2–0.4, ``text_final`` and ``fused`` in 0.85–0.92, each
  read against the seed-to-seed CKA of one configuration (:func:`cka_verdict`), with the CKA
  within each model (graph ↔ fused, text ↔ fused) beside them. A criterion that cannot be
  checked says why.
* **Curves** (:mod:`fusion_tuner.sweeps.figures`): learning curves of every arm of every sweep
  (median over seeds with the range, the baseline on the same axes), and learning curves and a
  test parity plot of the original baseline and the best configuration, every seed of each;
  links to each run's files (relative to the report, so they open from disk).

Layout: this module is the one entry (:func:`build_report`): it loads the sweeps
(:mod:`fusion_tuner.sweeps.plan_load`), computes the numbers (:mod:`fusion_tuner.sweeps.plan_model`,
pure), measures the CKA of the two checkpoints (:func:`measure_cka`, the only step that runs
models), evaluates the criteria (:mod:`fusion_tuner.sweeps.plan_criteria`, pure), draws the
document and its figures (:mod:`fusion_tuner.sweeps.plan_render`) and writes the files. The names
those modules define that callers used from here are re-exported.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from fusion_tuner.io import atomic_write_text, write_json
from fusion_tuner.rundir import Run
from fusion_tuner.sweeps.plan_criteria import (
    CKA_TARGETS,
    GAP_TARGET,
    MET,
    MIN_FLOOR_PAIRS,
    NOT_CHECKED,
    NOT_MET,
    CkaMeasurement,
    Comparison,
    CriteriaResult,
    cka_floor,
    cka_precondition,
    cka_verdict,
    compare,
    evaluate_criteria,
)
from fusion_tuner.sweeps.plan_load import (
    SWEEP_MARKERS,
    ReportError,
    Sweep,
    find_sweeps,
    is_sweep,
    load_plan,
    load_sweep,
)
from fusion_tuner.sweeps.plan_model import (
    RUN_FILES,
    Step,
    chain_path,
    compute_plan,
    plan_record,
    seed_stats,
    stats_text,
)
from fusion_tuner.sweeps.plan_render import CURVES_NOTE, render_report

__all__ = [
    "CKA_TARGETS",
    "CURVES_NOTE",
    "GAP_TARGET",
    "MET",
    "MIN_FLOOR_PAIRS",
    "NOT_CHECKED",
    "NOT_MET",
    "RUN_FILES",
    "SWEEP_MARKERS",
    "WITHIN_PAIRS",
    "CkaMeasurement",
    "ReportError",
    "Step",
    "Sweep",
    "build_report",
    "chain_path",
    "check_criteria",
    "cka_floor",
    "cka_verdict",
    "find_sweeps",
    "is_sweep",
    "load_plan",
    "load_sweep",
    "measure_cka",
]

log = logging.getLogger(__name__)

# Within one model: does the fused representation follow the graph or the text?
WITHIN_PAIRS = [("graph", "fused"), ("text", "fused")]


def _stats(runs: list[Run], split: str = "val", key: str = "mae") -> str:
    """Returns ``mean ± sd`` over ``runs`` of a result (see
    :func:`fusion_tuner.sweeps.plan_model.seed_stats`), ``—`` when none has it."""
    return stats_text(seed_stats(runs, split, key))


def _cka_floor_and_within(
    result: dict[str, Any],
    pair: tuple[Run, Run],
    orig_runs: list[Run],
    best_runs: list[Run],
    device: str,
) -> dict[str, list[float]]:
    """Add the seed-to-seed floor (both configurations' seed pairs) and the within-model CKA of
    the pair's two models to ``result``.

    Returns:
        The floor's values per stage ({} on failure, which ``result`` records).
    """
    from fusion_tuner.analysis.cka import seed_pairs_cka, stage_features, within_cka
    from fusion_tuner.runtime import resolve_device

    arms = [
        [r for r in runs if r.files is not None and r.files.best_checkpoint.is_file()]
        for runs in (orig_runs, best_runs)
    ]
    try:
        floor, pairs = seed_pairs_cka(arms, "test", device)
        dev = resolve_device(device)
        within = {
            name: within_cka(stage_features(r, r.split["test"], dev), WITHIN_PAIRS)
            for name, r in zip(("original", "best"), pair, strict=True)
        }
    except Exception as exc:  # the criteria then say the floor is missing
        log.warning("the CKA seed-to-seed floor failed: %s", exc)
        result["seed_floor"] = {"error": f"{type(exc).__name__}: {exc}"}
        return {}
    result["seed_floor"] = {"pairs": pairs, "values": floor, "estimator": "debiased linear"}
    result["within"] = within
    return floor


def measure_cka(cmp: Comparison, out: Path, cka: bool, device: str) -> CkaMeasurement:
    """Run the CKA of the comparison's seed-matched pair (outputs under ``out/cka``), then its
    seed-to-seed floor and the CKA within each model.

    Args:
        cmp: the best configuration against the original baseline.
        out: the report's folder.
        cka: False to skip the CKA (``--no-cka``).
        device: for the models: auto, cpu, cuda, ...

    Returns:
        The measurement; a failure is logged and recorded as why it is missing.
    """
    why = cka_precondition(cmp, cka)
    pair = cmp.pair
    missing = [r.name for r in pair or () if not (r.files and r.files.best_checkpoint.is_file())]
    if not why and missing:
        why = f"no best_model.pt in {', '.join(missing)}"
    result = None
    if not why and pair is not None:
        from fusion_tuner.analysis.cka import run_cka

        try:
            result = run_cka(
                [str(pair[0].path), str(pair[1].path)],
                out / "cka",
                names=["Original", "Best"],
                split="test",
                device=device,
            )
        except Exception as exc:  # reported as a criterion that could not be checked
            log.warning("CKA failed: %s", exc)
            why = f"CKA failed: {type(exc).__name__}: {exc}"
    if result is None or pair is None:
        return CkaMeasurement(result, {}, why)
    floor = _cka_floor_and_within(result, pair, cmp.orig_runs, cmp.best_runs, device)
    heatmap = out / "cka" / "cka_heatmap.png"
    return CkaMeasurement(result, floor, why, heatmap if heatmap.is_file() else None)


def _criteria(
    original: Step, best: Step, out: Path, threshold: float, cka: bool, device: str
) -> CriteriaResult:
    """Returns the plan's criteria for ``best`` against ``original``, the CKA measured."""
    cmp = compare(original, best)
    return evaluate_criteria(cmp, threshold, measure_cka(cmp, out, cka, device))


def check_criteria(
    original: Step, best: Step, out: Path, threshold: float, cka: bool, device: str
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, tuple[Run, Run] | None]:
    """The plan's success criteria for ``best`` against ``original`` (see module docstring).

    Returns:
        (criteria rows, the CKA result or None, the seed-matched (original, best) runs or None).
    """
    found = _criteria(original, best, out, threshold, cka, device)
    return found.records(), found.measured.result, found.comparison.pair


def build_report(
    paths: list[Path],
    out: Path | None = None,
    threshold: float | None = None,
    cka: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Write the plan report (see the module docstring) into ``out``.

    Args:
        paths: sweep directories or folders of them.
        out: the report's folder (None: ``plan_report/`` beside the sweeps).
        threshold: the relative change of validation MAE that counts (None: each sweep's own).
        cka: False to skip the CKA criteria.
        device: for the CKA: auto, cpu, cuda, ...

    Returns:
        The report's numbers (what ``report.json`` holds, NaN kept) and ``out``.

    Raises:
        ReportError: no sweep under ``paths``.
    """
    paths = [Path(p) for p in paths]
    sweeps = load_plan(paths, threshold)
    if out is None:
        root = Path(os.path.commonpath([str(p.resolve()) for p in paths]))
        out = (root.parent if is_sweep(root) else root) / "plan_report"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = compute_plan(paths, sweeps)
    found = None
    if model.steps:
        threshold_first = sweeps[0].summary.threshold
        found = _criteria(model.steps[0], model.steps[-1], out, threshold_first, cka, device)
    doc = render_report(model, found, out)
    numbers = plan_record(
        model, found.records() if found else [], found.measured.result if found else None
    )
    atomic_write_text(doc.markdown(out), out / "report.md")
    atomic_write_text(doc.html(), out / "report.html")
    write_json(out / "report.json", _clean(numbers))
    numbers["out"] = str(out)
    return numbers


def _clean(v: Any) -> Any:
    """Returns ``v`` with every NaN float, at any depth, as None (JSON has no NaN)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v
