"""``analyze data RUN_DIR``: the plan's "check the data" step, on the run's recorded split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.report import write_outputs
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.rundir import locate

RARE = 5  # an element in fewer training crystals than this is "rare"
ROBUST_Z = 3.5  # Iglewicz & Hoaglin's outlier threshold on the modified z-score


def robust_z(y: np.ndarray) -> np.ndarray:
    """Modified z-score 0.6745 (y - median) / MAD; with MAD = 0, the mean absolute deviation."""
    med = np.median(y)
    mad = np.median(np.abs(y - med))
    if mad > 0:
        return 0.6745 * (y - med) / mad
    meanad = np.mean(np.abs(y - med))
    return (y - med) / (1.2533 * meanad) if meanad > 0 else np.zeros_like(y)


def _stats(y: np.ndarray) -> dict[str, float]:
    q = np.quantile(y, [0.25, 0.5, 0.75]) if len(y) else [np.nan] * 3
    return {
        "n": len(y),
        "mean": float(y.mean()),
        "std": float(y.std()),
        "min": float(y.min()),
        "q25": float(q[0]),
        "median": float(q[1]),
        "q75": float(q[2]),
        "max": float(y.max()),
        "fraction_zero": float((y == 0).mean()),
    }


def run_data_check(run_dir: str, out: Path) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    from fusion_tuner.data.graphs import atomic_numbers
    from fusion_tuner.data.module import build_datamodule

    run = locate(run_dir)
    cfg = run.config
    dm = build_datamodule(cfg)
    split = run.split
    row_of = dm.graphs.row_of
    missing = [i for ids in split.values() for i in ids if i not in row_of]
    if missing:
        raise AnalysisError(
            f"{len(missing)} recorded ids are not in the run's data (e.g. {missing[:3]})"
        )
    targets = dm.graphs.targets.numpy()
    symbol = {v: k for k, v in atomic_numbers().items()}
    y = {s: targets[[row_of[i] for i in ids]] for s, ids in split.items() if ids}
    res: dict[str, Any] = {
        "run": str(run.path),
        "target": cfg.dataset.target,
        "stats": {s: _stats(v) for s, v in y.items()},
    }
    res["ks"] = {
        f"train_vs_{s}": dict(
            zip(("statistic", "p_value"), map(float, ks_2samp(y["train"], y[s])), strict=True)
        )
        for s in ("val", "test")
        if s in y
    }
    everything = np.concatenate(list(y.values()))
    zs = robust_z(everything)
    labels = [(s, i) for s, ids in split.items() if ids for i in ids]
    flagged = sorted(
        (abs(z), s, cid, float(v), float(z))
        for (s, cid), v, z in zip(labels, everything, zs, strict=True)
        if abs(z) > ROBUST_Z
    )[::-1]
    res["outliers"] = [
        {"id": cid, "split": s, "value": v, "robust_z": z} for _, s, cid, v, z in flagged
    ]
    counts: dict[str, dict[str, int]] = {}
    sizes: dict[str, list[int]] = {}
    for s, ids in split.items():
        sizes[s] = []
        for cid in ids:
            zz = dm.graphs.atomic_numbers(row_of[cid]).numpy()
            sizes[s].append(len(zz))
            for el in {symbol.get(int(v), str(v)) for v in zz}:
                counts.setdefault(el, {}).setdefault(s, 0)
                counts[el][s] += 1
    res["structure_size"] = {
        s: {"mean": float(np.mean(v)), "median": float(np.median(v)), "max": int(max(v))}
        for s, v in sizes.items()
        if v
    }
    res["element_coverage"] = counts
    res["rare_in_train"] = [
        {
            "element": el,
            "train": c.get("train", 0),
            "val": c.get("val", 0),
            "test": c.get("test", 0),
        }
        for el, c in sorted(counts.items())
        if (c.get("val", 0) or c.get("test", 0)) and c.get("train", 0) < RARE
    ]
    res["normalizer"] = run.checkpoint.get("normalizer")
    _plots(y, sizes, out)
    stat_rows = [
        [s, *[v[k] for k in ("n", "mean", "std", "min", "median", "max", "fraction_zero")]]
        for s, v in res["stats"].items()
    ]
    header = ["split", "n", "mean", "std", "min", "median", "max", "fraction = 0"]
    ks_rows = [[k, v["statistic"], v["p_value"]] for k, v in res["ks"].items()]
    md = "\n".join(
        [
            f"# Data check: {run.name} ({cfg.dataset.target})",
            "",
            table(header, stat_rows),
            "",
            "Two-sample Kolmogorov–Smirnov tests of the target distribution:",
            "",
            table(["pair", "KS statistic", "p-value"], ks_rows),
            "",
            f"Outliers (|robust z| > {ROBUST_Z}): {len(res['outliers'])}",
            "",
            table(
                ["id", "split", "value", "robust z"],
                [[o["id"], o["split"], o["value"], o["robust_z"]] for o in res["outliers"][:20]],
            ),
            "",
            f"Elements in val/test but in fewer than {RARE} training crystals: "
            + (
                ", ".join(
                    f"{r['element']} (train {r['train']}, val {r['val']}, test {r['test']})"
                    for r in res["rare_in_train"]
                )
                or "none"
            ),
            "",
            "Structure size (atoms per crystal): "
            + "; ".join(
                f"{s}: mean {v['mean']:.1f}, max {v['max']}"
                for s, v in res["structure_size"].items()
            ),
            "",
            f"Target normalisation used by the run: mean {res['normalizer']['mean']:.4g}, std {res['normalizer']['std']:.4g} "
            "(training split; the loss sees (y - mean) / std, metrics are in target units).",
            "",
            "![targets](targets.png)",
        ]
    )
    write_outputs(out, "data", res, md)
    print(table(header, stat_rows))
    print(table(["pair", "KS statistic", "p-value"], ks_rows))
    print(
        f"{len(res['outliers'])} outliers; rare-in-train elements: {[r['element'] for r in res['rare_in_train']]}"
    )
    return res


def _plots(y: dict[str, np.ndarray], sizes: dict[str, list[int]], out: Path) -> None:
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(min(v.min() for v in y.values()), max(v.max() for v in y.values()), 40)
    for s, v in y.items():
        axes[0].hist(v, bins=bins, density=True, histtype="step", lw=1.5, label=f"{s} (n={len(v)})")
        axes[1].hist(sizes[s], bins=30, density=True, histtype="step", lw=1.5, label=s)
    axes[0].set_xlabel("target")
    axes[1].set_xlabel("atoms per crystal")
    for ax in axes:
        ax.set_ylabel("density")
        ax.legend()
    save_figure(fig, out / "targets.png")
