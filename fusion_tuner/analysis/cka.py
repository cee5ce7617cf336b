"""``analyze cka --runs A B``: CKA between every stage of two trained models on one recorded split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.analysis.cka_estimators import RBF_MAX_N, CKAAccumulator, CKAError, rbf_cka
from fusion_tuner.analysis.report import write_outputs
from fusion_tuner.analysis.runs import loader_for, same_ids
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import fmt, table
from fusion_tuner.models.property import STAGES
from fusion_tuner.rundir import Run, locate
from fusion_tuner.runtime import resolve_device


@torch.no_grad()
def _stages(model: torch.nn.Module, loader, device: torch.device) -> list[dict[str, np.ndarray]]:
    model.to(device).eval()
    out = []
    for batch in loader:
        res = model(batch.to(device))
        out.append({k: v.double().cpu().numpy() for k, v in res.stages.items()})
    return out


def stage_features(run: Run, ids: list[str], device: torch.device) -> dict[str, np.ndarray]:
    """Every stage's representations of ``ids`` (in that order) by the run's best model."""
    batches = _stages(run.model, loader_for(run, ids), device)
    return {s: np.concatenate([b[s] for b in batches]) for s in batches[0]}


def _defined(acc: CKAAccumulator, a: str, b: str, debiased: bool) -> float | None:
    """CKA of stages ``a`` and ``b``; None where one is constant (CKA is undefined)."""
    try:
        return acc.cka(a, b, debiased)
    except CKAError:
        return None


def stage_cka(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], debiased: bool = True
) -> dict[str, float | None]:
    """CKA between same-named stages of two feature sets of the same crystals (None where a
    stage is constant over them, where CKA is undefined)."""
    acc = CKAAccumulator()
    acc.update({**{f"A:{s}": a[s] for s in a}, **{f"B:{s}": b[s] for s in b}})
    return {s: _defined(acc, f"A:{s}", f"B:{s}", debiased) for s in STAGES if s in a and s in b}


def within_cka(
    features: dict[str, np.ndarray], pairs: list[tuple[str, str]], debiased: bool = True
) -> dict[str, float | None]:
    """CKA between stages of one model (e.g. ``("graph", "fused")``), keyed ``"graph~fused"``."""
    acc = CKAAccumulator()
    acc.update(features)
    return {
        f"{x}~{y}": _defined(acc, x, y, debiased)
        for x, y in pairs
        if x in features and y in features
    }


def seed_pairs_cka(
    arms: list[list[Run]], split: str, device: str = "auto"
) -> tuple[dict[str, list[float]], list[tuple[str, str]]]:
    """Debiased CKA of same-named stages between every two seeds of one configuration (each arm
    of ``arms`` is one configuration's runs): the noise floor a cross-configuration CKA is read
    against. Pairs whose runs recorded different ``split`` ids are skipped.

    Returns:
        (stage -> one value per seed pair, the pairs as run names).
    """
    dev = resolve_device(device)
    values: dict[str, list[float]] = {}
    pairs: list[tuple[str, str]] = []
    for runs in arms:
        groups: dict[frozenset[str], list[Run]] = {}  # runs that recorded the same split
        for r in runs:
            groups.setdefault(frozenset(r.split[split]), []).append(r)
        for group in groups.values():
            if len(group) < 2:
                continue
            ids = group[0].split[split]  # one order for every run of the group
            features = [stage_features(r, ids, dev) for r in group]
            for i, a in enumerate(group):
                for j in range(i + 1, len(group)):
                    pairs.append((a.name, group[j].name))
                    for stage, v in stage_cka(features[i], features[j]).items():
                        if v is not None:
                            values.setdefault(stage, []).append(v)
    return values, pairs


def run_cka(
    runs: list[str],
    out: Path,
    names: list[str] | None = None,
    split: str = "test",
    rbf: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Cross-model CKA matrix (linear, biased and debiased; RBF optionally) on run A's split."""
    a, b = (locate(p, names[i] if names else None) for i, p in enumerate(runs))
    if a.name == b.name:
        b.name = f"{b.name} (B)"
    ids = same_ids(a, b, split)
    dev = resolve_device(device)
    per_model = [_stages(run.model, loader_for(run, ids), dev) for run in (a, b)]
    stages_a = [s for s in STAGES if s in per_model[0][0]]
    stages_b = [s for s in STAGES if s in per_model[1][0]]
    acc = CKAAccumulator()
    for ba, bb in zip(per_model[0], per_model[1], strict=True):
        acc.update({**{f"A:{s}": ba[s] for s in stages_a}, **{f"B:{s}": bb[s] for s in stages_b}})
    n = acc.n
    if n != len(ids):
        raise CKAError(f"collected {n} samples for {len(ids)} ids")
    result: dict[str, Any] = {
        "runs": {"A": str(a.path), "B": str(b.path)},
        "names": [a.name, b.name],
        "split": split,
        "n": n,
        "stages_A": stages_a,
        "stages_B": stages_b,
        "estimator": "linear CKA, exact in feature space (float64); debiased = unbiased HSIC",
    }
    # a stage constant over these crystals (e.g. after a couple of epochs) has no CKA (None);
    # the other stages still do
    for key, debiased in (("linear", False), ("linear_debiased", True)):
        result[key] = [
            [_defined(acc, f"A:{sa}", f"B:{sb}", debiased) for sb in stages_b] for sa in stages_a
        ]
        result[f"{key}_diagonal"] = {
            s: _defined(acc, f"A:{s}", f"B:{s}", debiased) for s in stages_a if s in stages_b
        }
    if all(v is None for v in result["linear_diagonal"].values()):
        raise CKAError(f"every stage is constant in one of the two models over these {n} samples")
    if rbf:
        if n > RBF_MAX_N:
            raise CKAError(
                f"--rbf needs n <= {RBF_MAX_N} (n x n Gram matrices); this split has {n}"
            )
        full = [
            {s: np.concatenate([bt[s] for bt in pm]) for s in st}
            for pm, st in zip(per_model, (stages_a, stages_b), strict=True)
        ]
        result["rbf_diagonal"] = {
            s: rbf_cka(full[0][s], full[1][s]) for s in stages_a if s in stages_b
        }
    _heatmap(result, out / "cka_heatmap.png")
    diag_rows = [
        [
            s,
            result["linear_diagonal"][s],
            result["linear_debiased_diagonal"][s],
            result.get("rbf_diagonal", {}).get(s),
        ]
        for s in result["linear_diagonal"]
    ]
    header = ["stage", "linear CKA", "debiased", "RBF"]
    md = "\n".join(
        [
            f"# CKA: {a.name} vs {b.name} on the {split} split (n = {n})",
            "",
            "Same-named stages (diagonal):",
            "",
            table(header, diag_rows),
            "",
            "Full cross matrix (linear CKA; rows: A's stages, columns: B's):",
            "",
            table(
                ["A \\ B", *stages_b],
                [[sa, *row] for sa, row in zip(stages_a, result["linear"], strict=True)],
            ),
            "",
            "![heatmap](cka_heatmap.png)",
            "",
            "Reading it with the plan: `text_fine` low (0.2-0.4) means fusion acts; `text_final` / `fused` "
            "falling from ~0.98 to 0.85-0.92 means the fusion's effect survives to the end.",
        ]
    )
    write_outputs(out, "cka", result, md)
    print(f"CKA {a.name} vs {b.name}, {split} split, n={n}")
    print(table(header, diag_rows))
    return result


def _heatmap(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    m = np.array(result["linear"], dtype=float)  # None (undefined) -> nan
    fig, ax = plt.subplots(
        figsize=(1.1 * len(result["stages_B"]) + 2, 0.9 * len(result["stages_A"]) + 1.5)
    )
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(m.shape[1]), result["stages_B"], rotation=35, ha="right")
    ax.set_yticks(range(m.shape[0]), result["stages_A"])
    ax.set_xlabel(result["names"][1])
    ax.set_ylabel(result["names"][0])
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                fmt(m[i, j], 2),
                ha="center",
                va="center",
                color="w" if m[i, j] < 0.6 else "k",
                fontsize=8,
            )
    fig.colorbar(im, ax=ax, label="linear CKA")
    ax.set_title(f"CKA on the {result['split']} split (n={result['n']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
