"""Rounds of seeds for a sweep of experiments against a baseline (the rounds sweeper,
``hydra/sweeper=rounds``, which ``+phase=N`` selects).

1. The first round is the grid, exactly as Hydra's basic sweeper expands it (the phases: every
   experiment × seeds ``1..sweep.initial_seeds``), launched through the configured launcher.
2. Rounds planned by an earlier, interrupted command into the same sweep directory are launched
   again (``sweep_plan.json``'s ``rounds``): finished runs are skipped, unfinished ones resume.
3. Then, while :func:`fusion_tuner.sweeps.assess.assess` leaves experiments open and waiting
   for seeds, the next round's jobs (those experiments and the baseline, seeds up to the next
   look, each job the experiment's grid job with another ``random_seed``) are recorded in
   ``sweep_plan.json`` and launched as one batch: on SLURM one job array per round.

The state is read from the run directories each time, so a rerun of the same command into the
sweep directory replays the looks and continues the round it was in. A rerun under another
design (another ``sweep.max_seeds``, ``initial_seeds``, ``seeds_per_round``, ``family_alpha`` or
``equivalence_margin`` than ``sweep_plan.json`` records) is refused once a run has finished
(:func:`design_change`): the looks already taken were judged against the recorded design's
boundaries. A grid that is not
"experiments × seeds 1..initial_seeds with a baseline" (a one-seed smoke run, other seeds, a
grid over other keys) runs as one round, a fixed design, and the plan records that; so does
``sweep.max_seeds`` equal to ``sweep.initial_seeds``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fusion_tuner.io import write_json
from fusion_tuner.sweeps.plan import PLAN_FILE, job_experiment
from fusion_tuner.sweeps.sequential import Design

log = logging.getLogger(__name__)

EXIT_REFUSED = 2
SEED_KEY = "random_seed"


def _key(o: str) -> str:
    return o.partition("=")[0].lstrip("+~")


def job_seed(job: list[str]) -> int | None:
    for o in job:
        if _key(o) == SEED_KEY:
            try:
                return int(o.partition("=")[2])
            except ValueError:
                return None
    return None


def with_seed(job: list[str], seed: int) -> list[str]:
    """``job`` with its ``random_seed`` override replaced by ``seed`` (added when absent)."""
    if job_seed(job) is None and not any(_key(o) == SEED_KEY for o in job):
        return [*job, f"{SEED_KEY}={seed}"]
    return [f"{o.partition('=')[0]}={seed}" if _key(o) == SEED_KEY else o for o in job]


def design_for(grid: list[list[str]], sweep: Any) -> tuple[Design, str]:
    """The design a grid runs under and, for a fixed design, why (``""``: rounds).

    Args:
        grid: the first round's jobs (override lists).
        sweep: the composed config's ``sweep`` node (``SweepConfig`` fields).
    """
    cfg = Design(
        initial_seeds=int(sweep.initial_seeds),
        seeds_per_round=int(sweep.seeds_per_round),
        max_seeds=int(sweep.max_seeds),
        family_alpha=float(sweep.family_alpha),
        equivalence_margin=float(sweep.equivalence_margin),
    )
    seeds = sorted({s for s in (job_seed(j) for j in grid) if s is not None})
    n = max(len(seeds), 1)

    def fixed(why: str) -> tuple[Design, str]:
        d = asdict(cfg) | {"initial_seeds": n, "max_seeds": n}
        return Design(**d), why

    if cfg.max_seeds == cfg.initial_seeds:
        return fixed(f"sweep.max_seeds={cfg.max_seeds} = sweep.initial_seeds: one round")
    if any(job_seed(j) is None for j in grid):
        return fixed("the grid does not set random_seed for every job")
    if seeds != list(range(1, cfg.initial_seeds + 1)):
        return fixed(
            f"the grid's seeds {seeds} are not 1..{cfg.initial_seeds} (sweep.initial_seeds): "
            "it runs as given"
        )
    exps = {job_experiment(j) for j in grid}
    if "baseline" not in exps:
        return fixed("the grid has no baseline experiment to compare with")
    rest = {tuple(sorted(o for o in j if _key(o) not in (SEED_KEY, "experiment"))) for j in grid}
    if len(rest) > 1:
        return fixed("the grid varies keys besides experiment and random_seed")
    if len(grid) != len(exps) * len(seeds):
        return fixed("the grid is not every experiment × every seed")
    return cfg, ""


def record_fixed_design(sweep_dir: Path, grid: list[list[str]], sweep: Any) -> None:
    """Record in the plan that a grid run by another sweeper (Hydra's basic one) is a fixed
    design: as many seeds per experiment as the grid has (``sweep``: the config's node)."""
    from omegaconf import OmegaConf

    from fusion_tuner.config import SweepConfig

    node = sweep if sweep is not None else OmegaConf.structured(SweepConfig)
    seeds = {s for s in (job_seed(j) for j in grid) if s is not None}
    n = max(len(seeds), 1)
    design = Design(
        initial_seeds=n,
        seeds_per_round=int(node.seeds_per_round),
        max_seeds=n,
        family_alpha=float(node.family_alpha),
        equivalence_margin=float(node.equivalence_margin),
    )
    record_plan(
        sweep_dir,
        design=asdict(design),
        fixed_because="this sweeper runs the grid as given (hydra/sweeper=rounds adds seeds)",
        confirm_seeds=int(node.confirm_seeds),
    )


def design_change(sweep_dir: Path, design: Design) -> str:
    """Why a rerun into ``sweep_dir`` under ``design`` is refused ("" when it is not).

    A sweep's looks, boundaries and Holm levels are planned from its design before the first
    look; once a run has finished, the looks it took are spent. A rerun under another design
    (e.g. a higher ``sweep.max_seeds`` after the cap was reached) would replay those looks
    against boundaries they were never planned for: a decided experiment could reopen, an open
    one be decided by a look the design never made, and after the last look no level is left.
    """
    recorded = read_plan_record(sweep_dir).get("design")
    if not recorded:
        return ""
    new = asdict(design)
    keys = [k for k in new if k in recorded and recorded[k] != new[k]]
    if not keys:
        return ""
    from fusion_tuner.rundir import COMPLETED
    from fusion_tuner.sweeps.summary import load_runs

    if not any(r.status == COMPLETED for r in load_runs(sweep_dir)):
        return ""
    said = ", ".join(f"{k} {new[k]} (recorded: {recorded[k]})" for k in keys)
    return (
        f"the sweep in {sweep_dir} ran under another design ({PLAN_FILE}): {said}. Its finished "
        "runs were judged at the looks that design planned, and a new design would re-plan "
        "looks already taken. Rerun with the recorded sweep.* values to continue it; to test "
        "open experiments further, run them and the baseline as a new sweep on fresh seeds "
        "(hydra.sweeper.params.random_seed=range(N,M) past this sweep's seeds) into a new "
        "hydra.sweep.dir, as the summary's verdict says"
    )


def read_plan_record(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / PLAN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def record_plan(sweep_dir: Path, **changes: Any) -> None:
    rec = read_plan_record(sweep_dir) | changes
    write_json(Path(sweep_dir) / PLAN_FILE, rec)


def _log_design(design: Design, why: str) -> None:
    """Log how the sweep runs: one round (a fixed design, and why) or rounds of seeds."""
    if why:
        log.info("sweep: one round, a fixed design (%s)", why)
    else:
        log.info(
            "sweep: rounds of seeds for open experiments, looks at %s seeds per experiment",
            ", ".join(map(str, design.looks)),
        )


def run_rounds(sweeper: Any, arguments: list[str]) -> list[Any]:
    """The rounds sweeper's ``sweep`` (``sweeper``: a configured ``BasicSweeper``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from fusion_tuner.config import SweepConfig, sweep_problems

    config = sweeper.config
    params = sweeper._parse_config() + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(params)
    grid = [list(j) for batch in sweeper.split_arguments(overrides, None) for j in batch]
    node = config.get("sweep") or OmegaConf.structured(SweepConfig)
    problems = sweep_problems(SweepConfig(**OmegaConf.to_container(node)))  # type: ignore[arg-type]
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        raise SystemExit(EXIT_REFUSED)
    design, why = design_for(grid, node)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    changed = design_change(sweep_dir, design)
    if changed:
        print(f"error: {changed}", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    earlier = [list(j) for j in read_plan_record(sweep_dir).get("rounds", [])]
    record_plan(
        sweep_dir,
        jobs=read_plan_record(sweep_dir).get("jobs", grid),
        design=asdict(design),
        fixed_because=why or None,
        rounds=earlier,
        confirm_seeds=int(node.confirm_seeds),
    )
    _log_design(design, why)
    threshold = float(config.hydra.callbacks.sweep_summary.get("threshold", 0.02))
    returns: list[Any] = []
    index = 0

    def launch(batch: list[list[str]], what: str) -> None:
        nonlocal index
        if not batch:
            return
        log.info("sweep: %s, %d run(s)", what, len(batch))
        sweeper.validate_batch_is_legal(batch)
        results = sweeper.launcher.launch(batch, initial_job_idx=index)
        for r in results:
            _ = r.return_value  # a failed job raises here, as under the basic sweeper
        index += len(batch)
        returns.append(results)

    max_batch = sweeper.max_batch_size or len(grid)
    for start in range(0, len(grid), max_batch):
        launch(grid[start : start + max_batch], "round 1 (the grid)")
    if not why:
        launch(earlier, "the rounds an earlier command planned")
        _rounds(sweep_dir, grid, design, threshold, launch)
    _confirm(sweep_dir, grid, int(node.confirm_seeds), threshold, launch)
    return returns


def _rounds(
    sweep_dir: Path,
    grid: list[list[str]],
    design: Design,
    threshold: float,
    launch: Any,
) -> None:
    """Launch rounds of seeds while experiments are open and waiting for seeds."""
    from fusion_tuner.slurm.record import is_detached
    from fusion_tuner.sweeps.assess import assess, is_confirmation
    from fusion_tuner.sweeps.summary import _experiment_order, load_runs

    by_exp = {}
    for job in grid:
        by_exp.setdefault(job_experiment(job), job)
    done_looks = -1
    while True:
        if is_detached(sweep_dir):
            log.info(
                "sweep: the launcher detached; rerun the same command into "
                "hydra.sweep.dir=%s once the runs finished to run the next round",
                sweep_dir,
            )
            break
        runs = [r for r in load_runs(sweep_dir) if not is_confirmation(r)]
        order = _experiment_order(runs)
        groups = {e: [r for r in runs if r.experiment == e] for e in order}
        state = assess(groups, design, threshold, "sweep_plan.json")
        if state is None or not state.next_round or state.looks_done <= done_looks:
            break
        done_looks = state.looks_done
        jobs = [
            with_seed(by_exp[e], seed)
            for e, seeds in state.next_round.items()
            if e in by_exp
            for seed in seeds
        ]
        if not jobs:
            break
        planned = read_plan_record(sweep_dir)
        record_plan(sweep_dir, rounds=list(planned.get("rounds", [])) + jobs)
        opened = ", ".join(e for e in state.next_round if e != "baseline")
        launch(jobs, f"round {state.looks_done + 1} (seeds for {opened})")


def _confirm(
    sweep_dir: Path, grid: list[list[str]], wanted: int, threshold: float, launch: Any
) -> None:
    """Re-run the sweep's ✅ winner and the baseline on ``wanted`` fresh seeds (1001, ...)
    unless they ran; launched again by a rerun when an earlier command planned them."""
    from fusion_tuner.slurm.record import is_detached
    from fusion_tuner.sweeps.assess import CONFIRM_SEED_BASE
    from fusion_tuner.sweeps.summary import summarize

    earlier = [list(j) for j in read_plan_record(sweep_dir).get("confirm_jobs", [])]
    launch(earlier, "the confirmation an earlier command planned")
    if wanted == 0 or is_detached(sweep_dir):
        return
    s = summarize(sweep_dir, threshold)
    if s.winner is None or s.confirmation is None or s.confirmation.status != "pending":
        return
    by_exp = {}
    for job in grid:
        by_exp.setdefault(job_experiment(job), job)
    if s.winner not in by_exp or "baseline" not in by_exp:
        return
    seeds = [CONFIRM_SEED_BASE + i for i in range(wanted)]
    jobs = [with_seed(by_exp[e], seed) for e in ("baseline", s.winner) for seed in seeds]
    jobs = [j for j in jobs if j not in earlier]
    if not jobs:
        return
    record_plan(sweep_dir, confirm_jobs=earlier + jobs)
    launch(
        jobs,
        f"confirmation ({s.winner} and the baseline on fresh seeds "
        f"{', '.join(map(str, seeds))}, not used in selection)",
    )
