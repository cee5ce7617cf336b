"""``analyze compare --runs A B``: two models on the same recorded splits, with paired statistics.

Two runs: :func:`pair_predictions` loads both runs' predictions on every recorded split,
:func:`compute_compare` computes every number (a :class:`Comparison`), :func:`compare_markdown`,
:func:`compare_table`, :func:`compare_statement` and :func:`plot_compare` render it.
Two seed sets (comma-separated run directories per side): :func:`load_seed_set` reads each
side's completed results, :func:`compute_compare_sets` computes a :class:`SetComparison` and
:func:`compare_sets_markdown` renders it. :func:`run_compare` does either, writes
``compare.{json,md}`` (and, for two runs, ``parity.png`` and ``errors.png``) and prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.analysis.runs import predict_ids, same_ids
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.metrics import (
    MIN_SKILL,
    gap_ratio,
    learned_nothing,
    regression_metrics,
    skill_metrics,
)
from fusion_tuner.rundir import Run, locate
from fusion_tuner.runtime import resolve_device

SPLITS = ("train", "val", "test")
N_BOOT = 10_000  # bootstrap resamples of the test MAE difference


def predictions_on(
    run: Run, split: str, ids: list[str], device: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """(target, prediction) of the run's best model on ``ids``, in that order.

    Uses the run's ``predictions_<split>.csv`` (written by the best model) when it covers the ids;
    otherwise evaluates the checkpoint on the recorded split.
    """
    saved = run.predictions(split)
    aligned = saved.aligned(ids) if saved is not None else None
    if aligned is not None:
        return aligned
    return predict_ids(run, ids, resolve_device(device))


def paired_bootstrap(
    err_a: np.ndarray, err_b: np.ndarray, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """MAE(B) - MAE(A) and its 95% percentile bootstrap interval, resampling crystals in pairs."""
    rng = np.random.default_rng(seed)
    diff = np.abs(err_b) - np.abs(err_a)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    boots = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def wilcoxon_p(err_a: np.ndarray, err_b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of |err_A| vs |err_B| (1.0 when all pairs tie)."""
    from scipy.stats import wilcoxon

    d = np.abs(err_b) - np.abs(err_a)
    if np.all(d == 0):
        return 1.0
    return float(wilcoxon(np.abs(err_a), np.abs(err_b), zero_method="wilcox").pvalue)


def target_bins(y: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Ranges to break errors down by: exact zeros (metals, for band gaps) and quartiles of the rest."""
    bins: list[tuple[str, np.ndarray]] = []
    zero = y == 0
    if zero.mean() >= 0.05:
        bins.append(("target = 0 (metals)", zero))
    rest = ~zero if bins else np.ones_like(zero)
    if rest.sum() >= 4:
        qs = np.quantile(y[rest], [0, 0.25, 0.5, 0.75, 1.0])
        for lo, hi, k in zip(qs[:-1], qs[1:], range(4), strict=True):
            sel = rest & (y >= lo) & ((y <= hi) if k == 3 else (y < hi))
            label = f"[{lo:.3g}, {hi:.3g}{']' if k == 3 else ')'}" + (
                " (non-zero)" if bins and k == 0 else ""
            )
            bins.append((label, sel))
    return bins


@dataclass(frozen=True, eq=False)
class SplitPredictions:
    """Both runs' predictions on one recorded split, in the order of ``ids`` (compared by
    identity: it holds arrays)."""

    ids: list[str]
    target: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray


@dataclass(frozen=True)
class MaeDifference:
    """Test MAE(B) − MAE(A) with its paired bootstrap interval and Wilcoxon p-value."""

    b_minus_a: float
    ci95: tuple[float, float]
    n_boot: int
    wilcoxon_p: float
    n: int
    # False when a run learned nothing: the difference is then no evidence either way
    significance_reported: bool


@dataclass(frozen=True)
class TargetRangeMAE:
    """Both runs' test MAE on the crystals of one target range."""

    range: str
    n: int
    mae_a: float
    mae_b: float


@dataclass(frozen=True)
class Comparison:
    """Every number of a two-run comparison, and the test predictions its figures draw."""

    names: tuple[str, str]
    runs: tuple[str, str]  # the run directories
    # split -> run name -> regression metrics
    splits: dict[str, dict[str, dict[str, float]]]
    gap_ratio: dict[str, float]  # run name -> val/train MAE
    skill: dict[str, dict[str, float]]  # run name -> split -> skill
    learned_nothing: list[str]
    test_mae_difference: MaeDifference
    by_target_range: list[TargetRangeMAE]
    test: SplitPredictions = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``compare.json`` (and returned by :func:`run_compare`).

        Returns:
            A new dict: names, runs, splits, gap_ratio, skill, learned_nothing,
            test_mae_difference and by_target_range.
        """
        a, b = self.names
        t = self.test_mae_difference
        return {
            "names": list(self.names),
            "runs": list(self.runs),
            "splits": self.splits,
            "gap_ratio": self.gap_ratio,
            "skill": self.skill,
            "learned_nothing": self.learned_nothing,
            "test_mae_difference": {
                "B_minus_A": t.b_minus_a,
                "ci95": list(t.ci95),
                "n_boot": t.n_boot,
                "wilcoxon_p": t.wilcoxon_p,
                "n": t.n,
                "significance_reported": t.significance_reported,
            },
            "by_target_range": [
                {"range": r.range, "n": r.n, a: r.mae_a, b: r.mae_b} for r in self.by_target_range
            ],
        }


def pair_predictions(a: Run, b: Run, device: str = "auto") -> dict[str, SplitPredictions]:
    """Both runs' predictions on every split they recorded (the same ids, refused otherwise).

    Returns:
        Split name -> :class:`SplitPredictions`, for the non-empty splits of ``SPLITS``.
    """
    data: dict[str, SplitPredictions] = {}
    for split in SPLITS:
        ids = same_ids(a, b, split)
        if not ids:
            continue
        (ya, pa), (yb, pb) = (
            predictions_on(a, split, ids, device),
            predictions_on(b, split, ids, device),
        )
        if not np.allclose(ya, yb):
            raise AnalysisError(
                f"the two runs have different targets for the same {split} ids (different datasets?)"
            )
        data[split] = SplitPredictions(ids, ya, pa, pb)
    return data


def _test_difference(test: SplitPredictions, significance_reported: bool) -> MaeDifference:
    """The paired statistics of the test MAE difference (B minus A)."""
    y, pa, pb = test.target, test.pred_a, test.pred_b
    diff, lo, hi = paired_bootstrap(pa - y, pb - y, n_boot=N_BOOT)
    return MaeDifference(
        b_minus_a=diff,
        ci95=(lo, hi),
        n_boot=N_BOOT,
        wilcoxon_p=wilcoxon_p(pa - y, pb - y),
        n=len(test.ids),
        significance_reported=significance_reported,
    )


def compute_compare(
    names: tuple[str, str], runs: tuple[str, str], data: Mapping[str, SplitPredictions]
) -> Comparison:
    """Compare two runs on their shared recorded splits (pure: no I/O).

    Args:
        names: the runs' names (A, B), distinct.
        runs: their directories (reported as is).
        data: split -> both runs' predictions; train, val and test are needed.

    Returns:
        A :class:`Comparison`.
    """
    na, nb = names
    splits = {
        s: {na: regression_metrics(d.target, d.pred_a), nb: regression_metrics(d.target, d.pred_b)}
        for s, d in data.items()
    }
    gaps = {n: gap_ratio(splits["val"][n]["mae"], splits["train"][n]["mae"]) for n in names}
    skill, nothing = _skills(data, na, nb)
    test = data["test"]
    y, pa, pb = test.target, test.pred_a, test.pred_b
    return Comparison(
        names=names,
        runs=runs,
        splits=splits,
        gap_ratio=gaps,
        skill=skill,
        learned_nothing=nothing,
        test_mae_difference=_test_difference(test, significance_reported=not nothing),
        by_target_range=[
            TargetRangeMAE(
                label,
                int(sel.sum()),
                float(np.abs(pa - y)[sel].mean()),
                float(np.abs(pb - y)[sel].mean()),
            )
            for label, sel in target_bins(y)
            if sel.any()
        ],
        test=test,
    )


def compare_table(res: Comparison) -> str:
    """Both runs' metrics on every split as a Markdown table.

    Returns:
        The table's text.
    """
    rows = []
    for split, m in res.splits.items():
        for name in res.names:
            mm = m[name]
            rows.append([split, name, mm["mae"], mm["rmse"], mm["r2"], mm["max_error"], mm["n"]])
    return table(["split", "run", "MAE", "RMSE", "R²", "max error", "n"], rows)


def compare_statement(res: Comparison) -> str:
    """The paragraph on the test MAE difference (or on the runs that learned nothing).

    Returns:
        One paragraph of text.
    """
    a, b = res.names
    t = res.test_mae_difference
    stat = (
        f"Test MAE({b}) − MAE({a}) = {t.b_minus_a:+.4g}, 95% paired bootstrap CI "
        f"[{t.ci95[0]:+.4g}, {t.ci95[1]:+.4g}], Wilcoxon signed-rank p = {t.wilcoxon_p:.3g} (n = {t.n})."
    )
    if res.learned_nothing:
        sk = res.skill
        who = "; ".join(
            f"{n}: validation skill {sk[n]['val']:.2f}, test skill {sk[n]['test']:.2f}"
            for n in res.learned_nothing
        )
        stat = (
            f"LEARNED NOTHING: {' and '.join(res.learned_nothing)} do(es) not beat the "
            f"training-mean predictor (skill = 1 − MAE / MAE of predicting the training mean "
            f"below {MIN_SKILL:g}; {who}). This is not a comparison of what the models learned: "
            f"the test MAE difference ({b} − {a} = {t.b_minus_a:+.4g}, n = "
            f"{t.n}) is no evidence that either model is better. Make the runs learn first."
        )
    return stat + (
        " One run per side: the interval covers the crystals' noise only, not the seed-to-seed "
        "spread of training, so it cannot separate the two configurations from seed noise; "
        "compare seed sets (a sweep's summary pairs several seeds per configuration)."
    )


def compare_markdown(res: Comparison) -> str:
    """The report ``compare.md`` of two runs (before :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    a, b = res.names
    gaps = ", ".join(f"{k}: {v:.3g}" for k, v in res.gap_ratio.items())
    by_range = table(
        ["test target range", "n", a, b],
        [[r.range, r.n, r.mae_a, r.mae_b] for r in res.by_target_range],
    )
    return "\n".join(
        [
            f"# {a} vs {b}",
            "",
            compare_table(res),
            "",
            f"Gap ratio (val/train MAE): {gaps}.",
            "",
            "Skill against the training-mean predictor (1 − MAE / its MAE): "
            + ", ".join(
                f"{n}: val {v['val']:.3g}, test {v['test']:.3g}" for n, v in res.skill.items()
            )
            + ".",
            "",
            compare_statement(res),
            "",
            "Test MAE by target range:",
            "",
            by_range,
            "",
            "![parity](parity.png)",
            "",
            "![errors](errors.png)",
        ]
    )


def run_compare(
    runs: list[str], out: Path, names: list[str] | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Compare two runs (or, when a side lists several comma-separated runs, two seed sets:
    :func:`run_compare_sets`); write ``compare.{json,md}``, ``parity.png`` and ``errors.png``
    into ``out`` and print the table and the statement on the test MAE difference.

    Returns:
        The numbers written to ``compare.json`` (:meth:`Comparison.to_json`).
    """
    if any("," in r for r in runs):  # a side is a set of runs (one configuration, seeds)
        return run_compare_sets(runs, out, names)
    a, b = (locate(p, names[i] if names else None) for i, p in enumerate(runs))
    if a.name == b.name:
        b.name = f"{b.name} (B)"
    same_ids(a, b, "test")  # refuse before any work if the test sets differ
    res = compute_compare(
        (a.name, b.name), (str(a.path), str(b.path)), pair_predictions(a, b, device)
    )
    plot_compare(res, out)
    numbers = res.to_json()
    write_outputs(out, "compare", numbers, compare_markdown(res))
    print(compare_table(res))
    print(compare_statement(res))
    return numbers


@dataclass(frozen=True)
class SeedSet:
    """One side of a seed-set comparison: its completed runs' final results."""

    label: str
    runs: list[str]  # the run directories
    # split ("val", "test") -> MAE by seed (a list, in run order, when seeds are missing or repeat)
    mae: dict[str, dict[int, float] | list[float]]
    val_skill: list[float | None]  # per run, in run order


@dataclass(frozen=True)
class SeedDifference:
    """MAE(B) − MAE(A) on one split from the seed-level results (:func:`decide`)."""

    b_minus_a: float
    ci95: tuple[float, float] | None  # None when a side has a single seed
    method: str | None
    seeds: tuple[int, int]  # (A's, B's)


@dataclass(frozen=True)
class SideMAE:
    """Mean and sample sd of one side's MAE over its seeds on one split."""

    split: str
    label: str
    seeds: int
    mean: float
    sd: float


@dataclass(frozen=True)
class SetComparison:
    """Every number of a seed-set comparison."""

    names: tuple[str, str]
    runs: tuple[list[str], list[str]]
    differences: dict[str, SeedDifference]  # "val", "test"
    sides: list[SideMAE]  # per split, then per side
    skill: dict[str, float]  # label -> median validation skill (sides where every run has one)
    learned_nothing: list[str]

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``compare.json`` (and returned by :func:`run_compare_sets`).

        Returns:
            A new dict: names, runs, val_mae_difference, test_mae_difference, skill and
            learned_nothing.
        """
        res: dict[str, Any] = {"names": list(self.names), "runs": list(self.runs)}
        for split, d in self.differences.items():
            res[f"{split}_mae_difference"] = {
                "B_minus_A": d.b_minus_a,
                "ci95": list(d.ci95) if d.ci95 is not None else None,
                "method": d.method,
                "seeds": list(d.seeds),
            }
        res["skill"] = self.skill
        res["learned_nothing"] = self.learned_nothing
        return res


def load_seed_set(runs: Sequence[Run], label: str) -> SeedSet:
    """One side's final results, read from its runs' ``metrics.json``.

    Returns:
        A :class:`SeedSet`.
    """
    return SeedSet(
        label=label,
        runs=[str(r.path) for r in runs],
        mae={split: _seed_values(list(runs), split) for split in ("val", "test")},
        val_skill=[r.result("val", "skill") for r in runs],
    )


def _difference(base: SeedSet, exp: SeedSet, split: str) -> SeedDifference:
    """B minus A on ``split`` by :func:`~fusion_tuner.decision.decide`."""
    from fusion_tuner.decision import decide

    d = decide(exp.mae[split], base.mae[split], 0.0)
    return SeedDifference(
        b_minus_a=d.delta,
        ci95=(d.low, d.high) if d.method else None,
        method=d.method or None,
        seeds=(d.n_base, d.n),
    )


def _side_mae(side: SeedSet, split: str) -> SideMAE:
    """Mean and sd (ddof 1; 0 with one seed) of a side's MAE on ``split``."""
    by = side.mae[split]
    vals = list(by.values()) if isinstance(by, dict) else by
    m, sd = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return SideMAE(split, side.label, len(vals), m, sd)


def compute_compare_sets(a: SeedSet, b: SeedSet) -> SetComparison:
    """Compare two seed sets from their seed-level results (pure: no I/O); the interval is
    paired by seed when both sides ran the same seeds, Welch's otherwise.

    Returns:
        A :class:`SetComparison`.
    """
    skills = {
        s.label: float(np.median(s.val_skill))
        for s in (a, b)
        if all(v is not None for v in s.val_skill)
    }
    return SetComparison(
        names=(a.label, b.label),
        runs=(a.runs, b.runs),
        differences={split: _difference(a, b, split) for split in ("val", "test")},
        sides=[_side_mae(s, split) for split in ("val", "test") for s in (a, b)],
        skill=skills,
        learned_nothing=[n for n, v in skills.items() if learned_nothing(v)],
    )


def _verdict(res: SetComparison, split: str) -> str:
    """One sentence on the MAE difference of ``split`` and its interval."""
    d = res.differences[split]
    interval = (
        f"95% interval [{d.ci95[0]:+.4g}, {d.ci95[1]:+.4g}] ({d.method}, {d.seeds[0]} / "
        f"{d.seeds[1]} seeds)"
        if d.ci95 is not None
        else "no interval (a side has a single seed: it cannot separate the models from seed noise)"
    )
    a, b = res.names
    return f"{split} MAE({b}) − MAE({a}) = {d.b_minus_a:+.4g}, {interval}"


def compare_sets_markdown(res: SetComparison) -> str:
    """The report ``compare.md`` of two seed sets (also what is printed).

    Returns:
        The Markdown text, without a final newline.
    """
    rows = [[s.split, s.label, s.seeds, s.mean, s.sd] for s in res.sides]
    lines = [
        f"# {res.names[0]} vs {res.names[1]} (seed sets)",
        "",
        table(["split", "configuration", "seeds", "MAE mean", "MAE sd"], rows),
        "",
    ]
    if res.learned_nothing:
        lines.append(
            f"LEARNED NOTHING: {' and '.join(res.learned_nothing)} do(es) not beat the "
            f"training-mean predictor (median validation skill below {MIN_SKILL:g}): the "
            "difference below is no evidence that either configuration is better."
        )
        lines.append("")
    lines += [_verdict(res, "val") + ".", "", _verdict(res, "test") + "."]
    return "\n".join(lines)


def run_compare_sets(sides: list[str], out: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Two seed sets (each side: comma-separated run directories of one configuration): the
    interval of the change comes from the seed-level results (paired by seed when both sides ran
    the same seeds, Welch's otherwise), on validation and test MAE, with each side's skill.

    Writes ``compare.{json,md}`` into ``out`` and prints the report.

    Returns:
        The numbers written to ``compare.json`` (:meth:`SetComparison.to_json`).
    """
    sets: list[list[Run]] = []
    for side in sides:
        paths = [p for p in side.split(",") if p]
        sets.append([locate(p) for p in paths])
    label = [names[i] if names else (sets[i][0].experiment or sets[i][0].name) for i in range(2)]
    if label[0] == label[1]:
        label[1] = f"{label[1]} (B)"
    for i, runs in enumerate(sets):
        bad = [r.name for r in runs if r.result("val") is None]
        if bad:
            raise AnalysisError(
                f"{label[i]}: {', '.join(bad)} has no completed metrics.json; compare completed "
                "runs only"
            )
    res = compute_compare_sets(load_seed_set(sets[0], label[0]), load_seed_set(sets[1], label[1]))
    md = compare_sets_markdown(res)
    numbers = res.to_json()
    write_outputs(out, "compare", numbers, md)
    print(md)
    return numbers


def _seed_values(runs: list[Run], split: str) -> dict[int, float] | list[float]:
    """The runs' MAE on ``split``: by seed, or a list (in run order) when seeds are missing or
    repeat."""
    seeds = [r.seed for r in runs]
    vals = [float(r.result(split)) for r in runs]  # type: ignore[arg-type]
    if None in seeds or len(set(seeds)) != len(seeds):
        return vals
    return dict(zip(seeds, vals, strict=True))  # type: ignore[arg-type]


def _skills(
    data: Mapping[str, SplitPredictions], name_a: str, name_b: str
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Each run's validation and test skill against the training-mean predictor (the mean of
    the recorded training targets), and the runs whose validation skill is below MIN_SKILL."""
    mean = float(np.mean(data["train"].target))
    skills: dict[str, dict[str, float]] = {name_a: {}, name_b: {}}
    for split in ("val", "test"):
        if split not in data:
            continue
        d = data[split]
        for name, p in ((name_a, d.pred_a), (name_b, d.pred_b)):
            skills[name][split] = skill_metrics(d.target, p, mean)["skill"]
    nothing = [n for n, v in skills.items() if learned_nothing(v.get("val", v.get("test")))]
    return skills, nothing


def plot_compare(res: Comparison, out: Path) -> None:
    """Draw ``<out>/parity.png`` (each run's test parity plot) and ``<out>/errors.png`` (the
    histograms of both runs' test errors).

    Returns:
        None; it writes the figures.
    """
    name_a, name_b = res.names
    y, pa, pb = res.test.target, res.test.pred_a, res.test.pred_b
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = float(min(y.min(), pa.min(), pb.min())), float(max(y.max(), pa.max(), pb.max()))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    for ax, p, name in zip(axes, (pa, pb), (name_a, name_b), strict=True):
        ax.scatter(y, p, s=8, alpha=0.6)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        ax.set_title(f"{name}: test MAE {res.splits['test'][name]['mae']:.3g}")
        ax.set_xlabel("target")
    axes[0].set_ylabel("prediction")
    save_figure(fig, out / "parity.png")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bins = np.linspace(
        float(min((pa - y).min(), (pb - y).min())), float(max((pa - y).max(), (pb - y).max())), 40
    )
    ax.hist(pa - y, bins=bins, alpha=0.55, label=name_a)
    ax.hist(pb - y, bins=bins, alpha=0.55, label=name_b)
    ax.set_xlabel("prediction − target (test)")
    ax.set_ylabel("crystals")
    ax.legend()
    save_figure(fig, out / "errors.png")
