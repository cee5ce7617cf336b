"""The summary of a search: ``search_summary.md`` / ``.json``, ``best_experiment.yaml`` and
Optuna's plots, written into the sweep directory when a search ends (also after failed trials,
and on demand: ``python -m fusion_tuner.summary SWEEP_DIR``).

It reads the study's journal and the trials' run directories only. What it says about the best
trial is as careful as the phase summary: the best of N trials is chosen on validation MAE, so
its value is optimistic; its advantage over the baseline (trials the search ran with the
baseline's values, ``hydra.sweeper.baseline_runs``) is compared with the baseline's seed noise
when the baseline ran with two seeds or more; a search under a capped budget (``budget=quick``,
``budget=smoke``) says its ranking is a pipeline check.
"""

from __future__ import annotations

import math
import shlex
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_tuner.io import atomic_write_text, pyplot, save_figure, write_json
from fusion_tuner.markdown import fmt, safe_markdown, table
from fusion_tuner.rundir import Run
from fusion_tuner.search import trial_run_dir
from fusion_tuner.search.loop import not_this_trials
from fusion_tuner.search.space import Dimension, SearchSpace, config_values
from fusion_tuner.search.study import journal_path, read_record
from fusion_tuner.words import plural

SUMMARY_MD, SUMMARY_JSON, BEST_YAML = (
    "search_summary.md",
    "search_summary.json",
    "best_experiment.yaml",
)
PLOTS = (
    "optimization_history.png",
    "param_importances.png",
    "parallel_coordinate.png",
    "intermediate_values.png",
)
STATE_WORDS = {
    "COMPLETE": "completed",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "unfinished",
    "WAITING": "waiting",
}


@dataclass
class SearchSummary:
    """What :func:`write_search_summary` found; ``done`` says whether the search reached its
    ``n_trials`` with at least one completed trial and nothing left unfinished."""

    record: dict[str, Any]
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    best: dict[str, Any] | None
    comparison: dict[str, Any]
    notes: list[str]
    plots: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        ended = self.counts["completed"] + self.counts["pruned"] + self.counts["failed"]
        return (
            self.counts["completed"] > 0
            and self.counts["unfinished"] == 0
            and ended >= int(self.record["n_trials"])
        )


def space_of(record: dict[str, Any]) -> SearchSpace:
    """The search space a ``search.json`` records."""
    from optuna.distributions import json_to_distribution

    dims = {
        d["name"]: Dimension(d["name"], d["key"], json_to_distribution(d["distribution"]))
        for d in record["dimensions"]
    }
    return SearchSpace(dims, list(record["fixed"]))


def load_study(sweep_dir: Path, record: dict[str, Any]) -> Any:
    import optuna

    from fusion_tuner.search.study import check_journal, journal_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_journal(journal_path(sweep_dir), repair=False)  # a corrupt line: named, not a traceback
    return optuna.load_study(
        study_name=record["study"], storage=journal_storage(journal_path(sweep_dir))
    )


def write_search_summary(sweep_dir: str | Path) -> SearchSummary:
    """Write the summary, the best trial's experiment file and the plots into ``sweep_dir``."""
    sweep_dir = Path(sweep_dir)
    record = read_record(sweep_dir)
    study = load_study(sweep_dir, record)
    space = space_of(record)
    summary = summarize(sweep_dir, record, study, space)
    summary.plots = write_plots(study, sweep_dir)
    if summary.best is not None:
        atomic_write_text(experiment_yaml(summary, space), sweep_dir / BEST_YAML)
    else:
        (sweep_dir / BEST_YAML).unlink(missing_ok=True)
    atomic_write_text(render_markdown(sweep_dir, summary), sweep_dir / SUMMARY_MD)
    write_json(
        sweep_dir / SUMMARY_JSON,
        {
            "search": record,
            "counts": summary.counts,
            "done": summary.done,
            "best": summary.best,
            "against_baseline": summary.comparison,
            "notes": summary.notes,
            "trials": summary.rows,
            "plots": summary.plots,
        },
    )
    return summary


# ---------------------------------------------------------------------------------- content
def summarize(
    sweep_dir: Path, record: dict[str, Any], study: Any, space: SearchSpace
) -> SearchSummary:
    base = record.get("base_values")
    rows = [_row(sweep_dir, t, base) for t in study.get_trials(deepcopy=False)]
    counts = {w: sum(r["state"] == w for r in rows) for w in STATE_WORDS.values()}
    completed = [r for r in rows if r["state"] == "completed"]
    best = None
    if completed:
        pick = min if record["direction"] == "minimize" else max
        best_row = pick(completed, key=lambda r: r["value"])
        best = _best(sweep_dir, best_row, space, study.trials[best_row["trial"]])
    comparison = _against_baseline(rows, best, record)
    notes = _notes(sweep_dir, rows, best, record)
    return SearchSummary(record, rows, counts, best, comparison, notes)


def _row(sweep_dir: Path, trial: Any, base: dict[str, Any] | None) -> dict[str, Any]:
    """One trial: its state, results, values; ``baseline`` when the search ran it as a baseline
    trial or its values are the baseline's (a grid's baseline point)."""
    run_dir = sweep_dir / trial_run_dir(trial)
    m = Run(run_dir).metrics
    if not_this_trials(run_dir, m, trial):  # another run's files: not this trial's numbers
        m = {}
    duration = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete and trial.datetime_start
        else None
    )
    state = STATE_WORDS.get(trial.state.name, trial.state.name.lower())
    params = config_values(trial.params, trial.distributions)
    note = str(trial.user_attrs.get("note", ""))
    if state == "unfinished" and m.get("status"):
        note = note or f"its run is {m['status']}: rerun the search command to resume it"
    return {
        "trial": trial.number,
        "state": state,
        "value": trial.value if state == "completed" else None,
        "val_mae": m.get("val", {}).get("mae"),
        "test_mae": m.get("test", {}).get("mae"),
        "epochs_run": m.get("epochs_run"),
        "stop_reason": m.get("stop_reason"),
        "params": params,
        "baseline": bool(trial.user_attrs.get("baseline")) or params == base,
        "seed": trial.user_attrs.get("random_seed", m.get("seed")),
        "budget": m.get("budget"),
        "duration_s": duration,
        "note": note,
        "run_dir": trial_run_dir(trial),
    }


def trial_command_overrides(space: SearchSpace, params: dict[str, Any], seed: Any) -> list[str]:
    """The overrides that rerun a trial alone: the search's fixed ones and its values."""
    from fusion_tuner.search.loop import last_per_key

    out = [o for o in space.overrides(params) if not _selects_search(o)]
    if seed is not None:
        out.append(f"random_seed={seed}")
    return last_per_key(out)


def _selects_search(override: str) -> bool:
    """``+search=tier1``: it selects the search itself (a sweep), so a single run drops it."""
    return override.partition("=")[0].lstrip("+~") == "search"


def shell_join(args: list[str]) -> str:
    """Arguments for a POSIX shell, quoted only where needed (``'k=2,3'`` keeps Hydra's quotes)."""
    return " ".join(a if a == shlex.quote(a) else _double_quote(a) for a in args)


def _double_quote(arg: str) -> str:
    if any(c in arg for c in '"$`\\!'):
        return shlex.quote(arg)
    return f'"{arg}"'


def _best(sweep_dir: Path, row: dict[str, Any], space: SearchSpace, trial: Any) -> dict[str, Any]:
    seed = trial.user_attrs.get("random_seed")
    overrides = trial_command_overrides(space, trial.params, seed)
    plain = [o for o in overrides if not o.startswith("random_seed=")]
    return {
        "trial": row["trial"],
        "value": row["value"],
        "test_mae": row["test_mae"],
        "params": row["params"],
        "baseline": row["baseline"],
        "overrides": overrides,
        "command": "python -m fusion_tuner " + shell_join(overrides),
        "confirm_command": "python -m fusion_tuner -m " + shell_join([*plain, "random_seed=1,2,3"]),
        "run_dir": str(sweep_dir / row["run_dir"]),
    }


def _against_baseline(
    rows: list[dict[str, Any]], best: dict[str, Any] | None, record: dict[str, Any]
) -> dict[str, Any]:
    """The best trial against the baseline trials, with the baseline's seed noise when it ran
    with two seeds or more (see the module docstring)."""
    base = [r["value"] for r in rows if r["baseline"] and r["state"] == "completed"]
    out: dict[str, Any] = {"baseline_trials": sum(r["baseline"] for r in rows), "n": len(base)}
    if best is None or not base:
        return out
    mean = sum(base) / len(base)
    delta = best["value"] - mean
    out |= {"baseline_val_mae": mean, "delta": delta, "delta_pct": 100 * delta / mean}
    if len(base) >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in base) / (len(base) - 1))
        # one run's spread around the mean of k runs: sd * sqrt(1 + 1/k)
        margin = 2 * sd * math.sqrt(1 + 1 / len(base))
        better = delta < 0 if record["direction"] == "minimize" else delta > 0
        out |= {"seed_sd": sd, "margin": margin, "beyond_noise": abs(delta) > margin and better}
    return out


def _notes(
    sweep_dir: Path, rows: list[dict[str, Any]], best: dict[str, Any] | None, record: dict
) -> list[str]:
    """The caveats a reader must see next to the best trial."""
    notes = []
    budgets = {r["budget"] for r in rows if r["budget"]}
    capped = sorted(budgets - {"full"})
    if capped:  # quick, smoke: caps or a slim model
        settings = _budget_settings(sweep_dir, rows)
        notes.append(
            f"budget={capped[0]}{settings}: this ranking is a pipeline check, not a result; "
            "search with budget=full before trusting the best trial."
        )
    n_done = sum(r["state"] == "completed" for r in rows)
    if best is not None and n_done > 1:
        notes.append(
            f"The best of {n_done} completed trials is chosen on validation MAE, so its value is "
            "optimistic (the luckiest of several noisy runs); its test MAE is the fairer "
            "estimate. Confirm it over seeds before adopting it."
        )
    return notes


def _is_budget_note(note: str) -> bool:
    """The caveat of a search run under a capped budget (``budget=quick``, ``budget=smoke``)."""
    return note.startswith("budget=")


def _budget_settings(sweep_dir: Path, rows: list[dict[str, Any]]) -> str:
    for r in rows:
        budget = Run(sweep_dir / r["run_dir"]).settings.get("budget") if r["budget"] else None
        if budget:
            return (
                f" (at most {budget.get('max_epochs')} epochs and "
                f"{budget.get('max_structures')} crystals per trial)"
            )
    return ""


# -------------------------------------------------------------------------------- rendering
def render_markdown(sweep_dir: Path, s: SearchSummary) -> str:
    rec, c = s.record, s.counts
    sampler = rec["sampler"]
    seed = f", seed {sampler['seed']}" if sampler.get("seed") is not None else ""
    lines = [
        f"# Search summary: {sweep_dir}",
        "",
        f"Study `{rec['study']}` (`{journal_path(sweep_dir).name}`): {rec['direction']} "
        f"validation MAE over {', '.join(d['name'] for d in rec['dimensions'])}; sampler "
        f"{sampler['name']}{seed}; pruner {rec['pruner']['name']}; {rec['n_jobs']} trial(s) in "
        f"flight at once.",
        "",
        f"**{c['completed'] + c['pruned'] + c['failed']} of {plural(rec['n_trials'], 'trial')} ended:** "
        f"{c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed"
        + (
            f", {c['unfinished']} unfinished (rerun the search command with "
            f"hydra.sweep.dir={Path(sweep_dir).resolve()} to resume them)"
            if c["unfinished"]
            else ""
        )
        + ".",
        "",
    ]
    lines += [f"> {n}" for n in s.notes[:1] if _is_budget_note(n)]
    lines += [""] if s.notes and _is_budget_note(s.notes[0]) else []
    lines += _best_section(s)
    lines += _trials_section(s)
    lines += _continue_section(sweep_dir, s)
    failed = [r for r in s.rows if r["state"] == "failed"]
    if failed:
        lines += ["## Failed trials", ""]
        lines += [f"- trial {r['trial']} ({r['run_dir']}): {r['note']}" for r in failed]
        lines.append("")
    lines += ["## Plots", ""]
    for name, reason in s.plots.items():
        title = name.removesuffix(".png").replace("_", " ")
        lines.append(f"![{title}]({name})" if not reason else f"- {title}: not drawn ({reason})")
    lines.append("")
    return safe_markdown("\n".join(lines))  # names and statuses are not trusted


def _best_section(s: SearchSummary) -> list[str]:
    b = s.best
    if b is None:
        return ["## Best trial", "", "No trial completed: there is no best trial yet.", ""]
    params = ", ".join(f"{k}={fmt(v, 6)}" for k, v in b["params"].items())
    lines = [
        f"## Best trial: {b['trial']} (validation MAE {fmt(b['value'])}, test MAE "
        f"{fmt(b['test_mae'])})",
        "",
        f"{params}" + (" — the baseline's own values" if b["baseline"] else ""),
        "",
        "Run it alone:",
        "",
        "```bash",
        b["command"],
        "```",
        "",
        f"As an experiment: `{BEST_YAML}` in this directory (copy it to "
        "`conf/experiment/<name>.yaml`, then `python -m fusion_tuner experiment=<name>`). "
        "Confirm it over three seeds:",
        "",
        "```bash",
        b["confirm_command"],
        "```",
        "",
        "### Against the baseline",
        "",
        _baseline_text(s),
        "",
    ]
    lines += [n for n in s.notes if not _is_budget_note(n)]
    lines.append("")
    return lines


def _baseline_text(s: SearchSummary) -> str:
    cmp, b = s.comparison, s.best
    assert b is not None
    if not cmp["baseline_trials"]:
        return (
            "This search ran no baseline trial, so the best trial is not compared with the "
            "baseline. hydra.sweeper.baseline_runs=3 in a new search trains the config without the "
            "search's values as its first 3 trials (seeds 42, 43, 44), which also measures the seed "
            "noise."
        )
    if not cmp["n"]:
        return "No baseline trial completed: no comparison is possible."
    if b["baseline"]:
        return (
            f"The best trial is a baseline trial: none of the searched settings beat the baseline "
            f"(validation MAE {fmt(cmp['baseline_val_mae'])} over {cmp['n']} seed(s))."
        )
    text = (
        f"Best − baseline = {fmt(cmp['delta'], 3)} ({cmp['delta_pct']:+.1f}%; baseline "
        f"validation MAE {fmt(cmp['baseline_val_mae'])}, mean of {cmp['n']} seed(s))."
    )
    if "seed_sd" not in cmp:
        return text + (
            " The seed noise is unknown (one baseline seed), so this difference may be luck; "
            "hydra.sweeper.baseline_runs=3 measures it."
        )
    verdict = (
        "larger than the seed noise: a real improvement, if the confirmation over seeds agrees."
        if cmp["beyond_noise"]
        else "within the seed noise: this search has not shown that the best trial is better "
        "than the baseline."
    )
    return text + (
        f" Seed noise: the baseline's validation MAE varies by sd {fmt(cmp['seed_sd'], 3)} across "
        f"{cmp['n']} seeds; a difference counts when it exceeds 2 × sd × √(1 + 1/{cmp['n']}) = "
        f"{fmt(cmp['margin'], 3)}. This one is {verdict}"
    )


def _trials_section(s: SearchSummary) -> list[str]:
    names = [d["name"] for d in s.record["dimensions"]]
    short = _short_names(names)
    header = ["trial", "state", "val_mae", "test_mae", "epochs", *short, "seconds", "run_dir"]
    rows = []
    for r in s.rows:
        state = r["state"] + (" (baseline)" if r["baseline"] else "")
        if r["state"] == "pruned" and r["epochs_run"]:
            state = f"pruned at epoch {r['epochs_run']}"
        rows.append(
            [
                r["trial"],
                state,
                r["val_mae"],
                r["test_mae"],
                r["epochs_run"],
                *(r["params"].get(n) for n in names),
                round(r["duration_s"]) if r["duration_s"] is not None else None,
                r["run_dir"],
            ]
        )
    return ["## Trials", "", table(header, rows), ""]


def _continue_section(sweep_dir: Path, s: SearchSummary) -> list[str]:
    """How to continue the search: the same command into the same directory (unfinished trials
    resume, completed ones are kept) with more trials; a grid never beyond its size."""
    overrides = s.record.get("command_overrides")
    if overrides is None:
        return []
    n_trials, cap = int(s.record["n_trials"]), s.record.get("max_trials")
    if cap is not None and n_trials >= cap:
        return [
            f"The grid is complete: all {cap} of its trials have been asked for (more would "
            "repeat points). Rerunning the same command resumes unfinished trials only.",
            "",
        ]
    more = n_trials + max(4, int(s.record["n_jobs"]))
    if cap is not None:
        more = min(more, int(cap))
    args = [*overrides, f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.n_trials={more}"]
    return [
        "Continue this search (unfinished trials resume, ended ones are kept; the study counts "
        "every trial toward n_trials):",
        "",
        "```bash",
        "python -m fusion_tuner -m " + shell_join(args),
        "```",
        "",
    ]


def _short_names(names: list[str]) -> list[str]:
    """The last part of each dotted name where that part is unique."""
    last = [n.rsplit(".", 1)[-1] for n in names]
    return [ln if last.count(ln) == 1 else n for n, ln in zip(names, last, strict=True)]


# ---------------------------------------------------------------------------- experiment
def experiment_yaml(s: SearchSummary, space: SearchSpace) -> str:
    """The best trial as a ``# @package _global_`` experiment file: its sampled values and the
    search's own fixed settings (``hydra.sweeper.params``); command-line settings are listed in a
    comment, not repeated."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from fusion_tuner.paths import config_groups

    b = s.best
    assert b is not None
    groups = set(config_groups())
    search_keys = set(s.record.get("search_keys", []))
    values: dict[str, Any] = {}
    run_settings: list[str] = []
    parser = OverridesParser.create()
    for o in space.fixed:
        parsed = parser.parse_override(o)
        if parsed.key_or_group in search_keys and not parsed.is_delete():
            values[parsed.key_or_group] = parsed.value()
        elif not _selects_search(o):
            run_settings.append(o)
    values |= b["params"]
    name = "search_" + "".join(ch if ch.isalnum() else "_" for ch in s.record["study"])
    name = f"{name}_trial{b['trial']}"
    defaults = [{f"override /{k}": v} for k, v in values.items() if k in groups]
    body: dict[str, Any] = {"experiment_name": name}
    for key, value in values.items():
        if key in groups:
            continue
        node = body
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    comment = (
        f"The best trial ({b['trial']}) of the search {s.record['study']}: validation MAE "
        f"{fmt(b['value'])}, test MAE {fmt(b['test_mae'])}. Use: copy to "
        "conf/experiment/<name>.yaml, then python -m fusion_tuner experiment=<name>."
    )
    if run_settings:
        comment += " The search also ran with (not part of this experiment): " + " ".join(
            run_settings
        )
    lines = textwrap.wrap(comment, 98, break_long_words=False, break_on_hyphens=False)
    text = "# @package _global_\n" + "".join(f"# {line}\n" for line in lines)
    if defaults:
        text += yaml.safe_dump({"defaults": defaults}, sort_keys=False)
    return text + yaml.safe_dump(body, sort_keys=False)


# --------------------------------------------------------------------------------- plots
def write_plots(study: Any, sweep_dir: Path) -> dict[str, str]:
    """Optuna's matplotlib plots; returns each file name with "" (drawn) or why it was not."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    pyplot()  # the Agg backend before Optuna imports pyplot
    import matplotlib
    from optuna.visualization import matplotlib as vm

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    makers: dict[str, tuple[str, Callable[[], Any]]] = {
        "optimization_history.png": (
            "" if completed else "no completed trial",
            lambda: vm.plot_optimization_history(study, target_name="validation MAE"),
        ),
        "param_importances.png": (
            "" if len(completed) >= 2 else "needs 2 completed trials",
            lambda: vm.plot_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=0), target_name="validation MAE"
            ),
        ),
        "parallel_coordinate.png": (
            "" if completed else "no completed trial",
            lambda: vm.plot_parallel_coordinate(study, target_name="validation MAE"),
        ),
        "intermediate_values.png": (
            "" if reported else "no trial reported an epoch",
            lambda: vm.plot_intermediate_values(study),
        ),
    }
    out = {}
    for name, (reason, make) in makers.items():
        path = sweep_dir / name
        if not reason:
            try:
                # Optuna switches pyplot to its own style; rc_context puts the old one back
                with warnings.catch_warnings(), matplotlib.rc_context():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    # e.g. matplotlib's "identical low and high ylims" for a constant column
                    warnings.simplefilter("ignore", UserWarning)
                    ax = make()
                    if name == "intermediate_values.png":
                        ax.set_xlabel("epoch")
                        ax.set_ylabel("validation MAE")
                    save_figure(ax.get_figure(), path)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # Optuna's own refusals
                reason = f"{type(exc).__name__}: {exc}"
        if reason:
            path.unlink(missing_ok=True)  # never leave a stale plot of an earlier summary
        out[name] = reason
    return out
