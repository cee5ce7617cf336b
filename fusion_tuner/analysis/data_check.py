"""``analyze data RUN_DIR``: the plan's "check the data" step, on the run's recorded split.

:func:`compute_data_check` computes every number (a :class:`DataCheck`) from the loaded split,
targets and structures; :func:`data_check_markdown` and :func:`plot_data_check` render it, and
:func:`run_data_check` loads the run, computes, writes ``data.{json,md}`` and ``targets.png``
and prints the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.rundir import locate

RARE = 5  # an element in fewer training crystals than this is "rare"
ROBUST_Z = 3.5  # Iglewicz & Hoaglin's outlier threshold on the modified z-score

STATS_HEADER = ["split", "n", "mean", "std", "min", "median", "max", "fraction = 0"]
KS_HEADER = ["pair", "KS statistic", "p-value"]


@dataclass(frozen=True)
class DataCheck:
    """Every number of the data check, and the per-split values its figure draws."""

    run: str  # the run directory
    name: str  # the run's name (the report's title)
    target: str
    # split -> n, mean, std, min, quartiles, max and the fraction of zero targets
    stats: dict[str, dict[str, float]]
    # "train_vs_<split>" -> two-sample KS statistic and p-value
    ks: dict[str, dict[str, float]]
    # |robust z| > ROBUST_Z, largest first: id, split, value, robust_z
    outliers: list[dict[str, Any]]
    # split -> mean, median and max atoms per crystal
    structure_size: dict[str, dict[str, float]]
    # element -> split -> crystals containing it
    element_coverage: dict[str, dict[str, int]]
    # elements in val/test but in fewer than RARE training crystals
    rare_in_train: list[dict[str, Any]]
    normalizer: dict[str, float] | None  # the run's target normalisation (checkpoint)
    # for the figure: split -> targets (non-empty splits), split -> atoms per crystal
    targets: dict[str, np.ndarray] = field(repr=False, compare=False)
    sizes: dict[str, list[int]] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``data.json`` (and returned by :func:`run_data_check`).

        Returns:
            A new dict: run, target, stats, ks, outliers, structure_size, element_coverage,
            rare_in_train and normalizer (the figure's arrays are left out).
        """
        return {
            "run": self.run,
            "target": self.target,
            "stats": self.stats,
            "ks": self.ks,
            "outliers": self.outliers,
            "structure_size": self.structure_size,
            "element_coverage": self.element_coverage,
            "rare_in_train": self.rare_in_train,
            "normalizer": self.normalizer,
        }


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


def refuse_missing(split: Mapping[str, Sequence[str]], row_of: Mapping[str, int]) -> None:
    """Raise :class:`AnalysisError` if a recorded id is not in the run's data.

    Returns:
        None; it only checks.
    """
    missing = [i for ids in split.values() for i in ids if i not in row_of]
    if missing:
        raise AnalysisError(
            f"{len(missing)} recorded ids are not in the run's data (e.g. {missing[:3]})"
        )


def _ks(y: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Two-sample KS tests of the training targets against the val and test targets."""
    from scipy.stats import ks_2samp

    return {
        f"train_vs_{s}": dict(
            zip(("statistic", "p_value"), map(float, ks_2samp(y["train"], y[s])), strict=True)
        )
        for s in ("val", "test")
        if s in y
    }


def _outliers(
    split: Mapping[str, Sequence[str]], y: Mapping[str, np.ndarray]
) -> list[dict[str, Any]]:
    """The crystals whose robust z-score over all splits exceeds ROBUST_Z, largest first."""
    everything = np.concatenate(list(y.values()))
    zs = robust_z(everything)
    labels = [(s, i) for s, ids in split.items() if ids for i in ids]
    flagged = sorted(
        (abs(z), s, cid, float(v), float(z))
        for (s, cid), v, z in zip(labels, everything, zs, strict=True)
        if abs(z) > ROBUST_Z
    )[::-1]
    return [{"id": cid, "split": s, "value": v, "robust_z": z} for _, s, cid, v, z in flagged]


def _coverage(
    split: Mapping[str, Sequence[str]],
    atomic_numbers: Mapping[str, np.ndarray],
    symbols: Mapping[int, str],
) -> tuple[dict[str, dict[str, int]], dict[str, list[int]]]:
    """(element -> split -> crystals containing it, split -> atoms per crystal)."""
    counts: dict[str, dict[str, int]] = {}
    sizes: dict[str, list[int]] = {}
    for s, ids in split.items():
        sizes[s] = []
        for cid in ids:
            zz = atomic_numbers[cid]
            sizes[s].append(len(zz))
            for el in {symbols.get(int(v), str(v)) for v in zz}:
                counts.setdefault(el, {}).setdefault(s, 0)
                counts[el][s] += 1
    return counts, sizes


def _rare_in_train(counts: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Elements seen in val or test but in fewer than RARE training crystals, by name."""
    return [
        {
            "element": el,
            "train": c.get("train", 0),
            "val": c.get("val", 0),
            "test": c.get("test", 0),
        }
        for el, c in sorted(counts.items())
        if (c.get("val", 0) or c.get("test", 0)) and c.get("train", 0) < RARE
    ]


def compute_data_check(
    split: Mapping[str, Sequence[str]],
    targets: np.ndarray,
    row_of: Mapping[str, int],
    atomic_numbers: Mapping[str, np.ndarray],
    symbols: Mapping[int, str],
    *,
    run: str,
    name: str,
    target: str,
    normalizer: dict[str, float] | None,
) -> DataCheck:
    """The data check of one recorded split (pure: no I/O).

    Args:
        split: split name -> the recorded ids (every id must be in ``row_of``).
        targets: the data's targets, by row.
        row_of: id -> row of ``targets``.
        atomic_numbers: id -> the crystal's atomic numbers (one per atom).
        symbols: atomic number -> element symbol.
        run: the run directory (reported as is).
        name: the run's name.
        target: the target's name.
        normalizer: the run's target normalisation (mean, std), as its checkpoint has it.

    Returns:
        A :class:`DataCheck`.
    """
    y = {s: targets[[row_of[i] for i in ids]] for s, ids in split.items() if ids}
    counts, sizes = _coverage(split, atomic_numbers, symbols)
    return DataCheck(
        run=run,
        name=name,
        target=target,
        stats={s: _stats(v) for s, v in y.items()},
        ks=_ks(y),
        outliers=_outliers(split, y),
        structure_size={
            s: {"mean": float(np.mean(v)), "median": float(np.median(v)), "max": int(max(v))}
            for s, v in sizes.items()
            if v
        },
        element_coverage=counts,
        rare_in_train=_rare_in_train(counts),
        normalizer=normalizer,
        targets=y,
        sizes=sizes,
    )


def stats_table(res: DataCheck) -> str:
    """The per-split target statistics as a Markdown table.

    Returns:
        The table's text.
    """
    rows = [
        [s, *[v[k] for k in ("n", "mean", "std", "min", "median", "max", "fraction_zero")]]
        for s, v in res.stats.items()
    ]
    return table(STATS_HEADER, rows)


def ks_table(res: DataCheck) -> str:
    """The KS tests as a Markdown table.

    Returns:
        The table's text.
    """
    return table(KS_HEADER, [[k, v["statistic"], v["p_value"]] for k, v in res.ks.items()])


def data_check_markdown(res: DataCheck) -> str:
    """The report ``data.md`` (before :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    rare = ", ".join(
        f"{r['element']} (train {r['train']}, val {r['val']}, test {r['test']})"
        for r in res.rare_in_train
    )
    sizes = "; ".join(
        f"{s}: mean {v['mean']:.1f}, max {v['max']}" for s, v in res.structure_size.items()
    )
    norm = res.normalizer
    return "\n".join(
        [
            f"# Data check: {res.name} ({res.target})",
            "",
            stats_table(res),
            "",
            "Two-sample Kolmogorov–Smirnov tests of the target distribution:",
            "",
            ks_table(res),
            "",
            f"Outliers (|robust z| > {ROBUST_Z}): {len(res.outliers)}",
            "",
            table(
                ["id", "split", "value", "robust z"],
                [[o["id"], o["split"], o["value"], o["robust_z"]] for o in res.outliers[:20]],
            ),
            "",
            f"Elements in val/test but in fewer than {RARE} training crystals: " + (rare or "none"),
            "",
            "Structure size (atoms per crystal): " + sizes,
            "",
            f"Target normalisation used by the run: mean {norm['mean']:.4g}, std {norm['std']:.4g} "
            "(training split; the loss sees (y - mean) / std, metrics are in target units).",
            "",
            "![targets](targets.png)",
        ]
    )


def data_check_summary(res: DataCheck) -> str:
    """The last line printed: the number of outliers and the rare-in-train elements.

    Returns:
        One line of text.
    """
    return (
        f"{len(res.outliers)} outliers; rare-in-train elements: "
        f"{[r['element'] for r in res.rare_in_train]}"
    )


def run_data_check(run_dir: str, out: Path) -> dict[str, Any]:
    """Check the data of a run's recorded split; write ``data.{json,md}`` and ``targets.png``
    into ``out`` and print the tables.

    Returns:
        The numbers written to ``data.json`` (:meth:`DataCheck.to_json`).
    """
    from fusion_tuner.data.graphs import atomic_numbers
    from fusion_tuner.data.module import build_datamodule

    run = locate(run_dir)
    cfg = run.config
    dm = build_datamodule(cfg)
    split = run.split
    row_of = dm.graphs.row_of
    refuse_missing(split, row_of)
    res = compute_data_check(
        split,
        dm.graphs.targets.numpy(),
        row_of,
        {i: dm.graphs.atomic_numbers(row_of[i]).numpy() for ids in split.values() for i in ids},
        {v: k for k, v in atomic_numbers().items()},
        run=str(run.path),
        name=run.name,
        target=cfg.dataset.target,
        normalizer=run.checkpoint.get("normalizer"),
    )
    plot_data_check(res, out)
    numbers = res.to_json()
    write_outputs(out, "data", numbers, data_check_markdown(res))
    print(stats_table(res))
    print(ks_table(res))
    print(data_check_summary(res))
    return numbers


def plot_data_check(res: DataCheck, out: Path) -> None:
    """Draw ``<out>/targets.png``: the target and structure-size histograms per split.

    Returns:
        None; it writes the figure.
    """
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    y, sizes = res.targets, res.sizes
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
