"""``analyze compare --runs A B``: two models on the same recorded splits, with paired statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.report import write_outputs
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


def run_compare(
    runs: list[str], out: Path, names: list[str] | None = None, device: str = "auto"
) -> dict[str, Any]:
    if any("," in r for r in runs):  # a side is a set of runs (one configuration, seeds)
        return run_compare_sets(runs, out, names)
    a, b = (locate(p, names[i] if names else None) for i, p in enumerate(runs))
    if a.name == b.name:
        b.name = f"{b.name} (B)"
    same_ids(a, b, "test")  # refuse before any work if the test sets differ
    res: dict[str, Any] = {
        "names": [a.name, b.name],
        "runs": [str(a.path), str(b.path)],
        "splits": {},
    }
    data: dict[str, Any] = {}
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
        data[split] = (ids, ya, pa, pb)
        res["splits"][split] = {
            a.name: regression_metrics(ya, pa),
            b.name: regression_metrics(ya, pb),
        }
    for name in (a.name, b.name):
        tr, va = res["splits"]["train"][name]["mae"], res["splits"]["val"][name]["mae"]
        res.setdefault("gap_ratio", {})[name] = gap_ratio(va, tr)
    res["skill"], res["learned_nothing"] = _skills(data, a.name, b.name)
    ids, y, pa, pb = data["test"]
    diff, lo, hi = paired_bootstrap(pa - y, pb - y)
    res["test_mae_difference"] = {
        "B_minus_A": diff,
        "ci95": [lo, hi],
        "n_boot": 10_000,
        "wilcoxon_p": wilcoxon_p(pa - y, pb - y),
        "n": len(ids),
    }
    res["by_target_range"] = [
        {
            "range": label,
            "n": int(sel.sum()),
            a.name: float(np.abs(pa - y)[sel].mean()),
            b.name: float(np.abs(pb - y)[sel].mean()),
        }
        for label, sel in target_bins(y)
        if sel.any()
    ]
    _plots(a.name, b.name, y, pa, pb, out)
    rows = []
    for split, m in res["splits"].items():
        for name in (a.name, b.name):
            mm = m[name]
            rows.append([split, name, mm["mae"], mm["rmse"], mm["r2"], mm["max_error"], mm["n"]])
    header = ["split", "run", "MAE", "RMSE", "R²", "max error", "n"]
    t = res["test_mae_difference"]
    stat = (
        f"Test MAE({b.name}) − MAE({a.name}) = {t['B_minus_A']:+.4g}, 95% paired bootstrap CI "
        f"[{t['ci95'][0]:+.4g}, {t['ci95'][1]:+.4g}], Wilcoxon signed-rank p = {t['wilcoxon_p']:.3g} (n = {t['n']})."
    )
    if res["learned_nothing"]:
        sk = res["skill"]
        who = "; ".join(
            f"{n}: validation skill {sk[n]['val']:.2f}, test skill {sk[n]['test']:.2f}"
            for n in res["learned_nothing"]
        )
        stat = (
            f"LEARNED NOTHING: {' and '.join(res['learned_nothing'])} do(es) not beat the "
            f"training-mean predictor (skill = 1 − MAE / MAE of predicting the training mean "
            f"below {MIN_SKILL:g}; {who}). This is not a comparison of what the models learned: "
            f"the test MAE difference ({b.name} − {a.name} = {t['B_minus_A']:+.4g}, n = "
            f"{t['n']}) is no evidence that either model is better. Make the runs learn first."
        )
    t["significance_reported"] = not res["learned_nothing"]
    stat += (
        " One run per side: the interval covers the crystals' noise only, not the seed-to-seed "
        "spread of training, so it cannot separate the two configurations from seed noise; "
        "compare seed sets (a sweep's summary pairs several seeds per configuration)."
    )
    gaps = ", ".join(f"{k}: {v:.3g}" for k, v in res["gap_ratio"].items())
    by_range = table(
        ["test target range", "n", a.name, b.name],
        [[r["range"], r["n"], r[a.name], r[b.name]] for r in res["by_target_range"]],
    )
    md = "\n".join(
        [
            f"# {a.name} vs {b.name}",
            "",
            table(header, rows),
            "",
            f"Gap ratio (val/train MAE): {gaps}.",
            "",
            "Skill against the training-mean predictor (1 − MAE / its MAE): "
            + ", ".join(
                f"{n}: val {v['val']:.3g}, test {v['test']:.3g}" for n, v in res["skill"].items()
            )
            + ".",
            "",
            stat,
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
    write_outputs(out, "compare", res, md)
    print(table(header, rows))
    print(stat)
    return res


def run_compare_sets(sides: list[str], out: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Two seed sets (each side: comma-separated run directories of one configuration): the
    interval of the change comes from the seed-level results (paired by seed when both sides ran
    the same seeds, Welch's otherwise), on validation and test MAE, with each side's skill."""
    from fusion_tuner.sweeps.decision import decide

    sets: list[list[Run]] = []
    for side in sides:
        paths = [p for p in side.split(",") if p]
        sets.append([locate(p) for p in paths])
    label = [names[i] if names else (sets[i][0].experiment or sets[i][0].name) for i in range(2)]
    if label[0] == label[1]:
        label[1] = f"{label[1]} (B)"
    res: dict[str, Any] = {"names": label, "runs": [[str(r.path) for r in s] for s in sets]}
    for i, runs in enumerate(sets):
        bad = [r.name for r in runs if r.result("val") is None]
        if bad:
            raise AnalysisError(
                f"{label[i]}: {', '.join(bad)} has no completed metrics.json; compare completed "
                "runs only"
            )
    rows, verdicts = [], {}
    for split in ("val", "test"):
        by = [_seed_values(runs, split) for runs in sets]
        d = decide(by[1], by[0], 0.0)
        rec = {
            "B_minus_A": d.delta,
            "ci95": [d.low, d.high] if d.method else None,
            "method": d.method or None,
            "seeds": [d.n_base, d.n],
        }
        res[f"{split}_mae_difference"] = rec
        interval = (
            f"95% interval [{d.low:+.4g}, {d.high:+.4g}] ({d.method}, {d.n_base} / {d.n} seeds)"
            if d.method
            else "no interval (a side has a single seed: it cannot separate the models from "
            "seed noise)"
        )
        verdicts[split] = f"{split} MAE({label[1]}) − MAE({label[0]}) = {d.delta:+.4g}, {interval}"
        for i, runs in enumerate(sets):
            vals = [r.result(split) for r in runs]
            m, sd = float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            rows.append([split, label[i], len(vals), m, sd])
    skills = {
        label[i]: float(np.median([r.result("val", "skill") for r in runs]))
        for i, runs in enumerate(sets)
        if all(r.result("val", "skill") is not None for r in runs)
    }
    res["skill"] = skills
    res["learned_nothing"] = [n for n, v in skills.items() if learned_nothing(v)]
    lines = [
        f"# {label[0]} vs {label[1]} (seed sets)",
        "",
        table(["split", "configuration", "seeds", "MAE mean", "MAE sd"], rows),
        "",
    ]
    if res["learned_nothing"]:
        lines.append(
            f"LEARNED NOTHING: {' and '.join(res['learned_nothing'])} do(es) not beat the "
            f"training-mean predictor (median validation skill below {MIN_SKILL:g}): the "
            "difference below is no evidence that either configuration is better."
        )
        lines.append("")
    lines += [verdicts["val"] + ".", "", verdicts["test"] + "."]
    write_outputs(out, "compare", res, "\n".join(lines))
    print("\n".join(lines))
    return res


def _seed_values(runs: list[Run], split: str) -> dict[int, float] | list[float]:
    seeds = [r.seed for r in runs]
    vals = [float(r.result(split)) for r in runs]  # type: ignore[arg-type]
    if None in seeds or len(set(seeds)) != len(seeds):
        return vals
    return dict(zip(seeds, vals, strict=True))  # type: ignore[arg-type]


def _skills(
    data: dict[str, Any], name_a: str, name_b: str
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Each run's validation and test skill against the training-mean predictor (the mean of
    the recorded training targets), and the runs whose validation skill is below MIN_SKILL."""
    _, y_train, _, _ = data["train"]
    mean = float(np.mean(y_train))
    skills: dict[str, dict[str, float]] = {name_a: {}, name_b: {}}
    for split in ("val", "test"):
        if split not in data:
            continue
        _, y, pa, pb = data[split]
        for name, p in ((name_a, pa), (name_b, pb)):
            skills[name][split] = skill_metrics(y, p, mean)["skill"]
    nothing = [n for n, v in skills.items() if learned_nothing(v.get("val", v.get("test")))]
    return skills, nothing


def _plots(
    name_a: str, name_b: str, y: np.ndarray, pa: np.ndarray, pb: np.ndarray, out: Path
) -> None:
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = float(min(y.min(), pa.min(), pb.min())), float(max(y.max(), pa.max(), pb.max()))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    for ax, p, name in zip(axes, (pa, pb), (name_a, name_b), strict=True):
        ax.scatter(y, p, s=8, alpha=0.6)
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        ax.set_title(f"{name}: test MAE {np.abs(p - y).mean():.3g}")
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
