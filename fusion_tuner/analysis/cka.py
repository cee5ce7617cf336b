"""``analyze cka --runs A B``: CKA between every stage of two trained models on one recorded split.

:func:`model_stages` evaluates a run's model on the split, :func:`compute_cka` computes every
number from both models' stage outputs (a :class:`CKAResult`), :func:`cka_markdown`,
:func:`cka_table` and :func:`plot_cka_heatmap` render it, and :func:`run_cka` does all of it,
writes ``cka.{json,md}`` and ``cka_heatmap.png`` and prints the table. :func:`stage_cka`,
:func:`within_cka` and :func:`seed_pairs_cka` serve the sweep's plan report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.analysis.cka_estimators import RBF_MAX_N, CKAAccumulator, CKAError, rbf_cka
from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.analysis.runs import loader_for, same_ids
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import fmt, table
from fusion_tuner.models.property import STAGES
from fusion_tuner.rundir import Run, locate
from fusion_tuner.runtime import resolve_device

ESTIMATOR = "linear CKA, exact in feature space (float64); debiased = unbiased HSIC"

# one model's stage outputs, batch by batch: stage -> (batch size, width)
Batches = list[dict[str, np.ndarray]]


@torch.no_grad()
def _stages(model: torch.nn.Module, loader, device: torch.device) -> Batches:
    """Every stage's outputs of ``model`` on ``loader``'s batches, in float64.

    Returns:
        One dict (stage -> array) per batch.
    """
    model.to(device).eval()
    out = []
    for batch in loader:
        res = model(batch.to(device))
        out.append({k: v.double().cpu().numpy() for k, v in res.stages.items()})
    return out


def model_stages(run: Run, ids: list[str], device: torch.device) -> Batches:
    """Every stage's outputs of the run's best model on ``ids`` (in that order), per batch.

    Returns:
        One dict (stage -> array) per batch.
    """
    return _stages(run.model, loader_for(run, ids), device)


def stage_features(run: Run, ids: list[str], device: torch.device) -> dict[str, np.ndarray]:
    """Every stage's representations of ``ids`` (in that order) by the run's best model."""
    batches = model_stages(run, ids, device)
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


@dataclass(frozen=True)
class CKAResult:
    """Every number of the CKA between two models' stages on one split."""

    names: tuple[str, str]
    runs: tuple[str, str]  # the run directories, A and B
    split: str
    n: int
    stages_a: list[str]
    stages_b: list[str]
    # rows: A's stages, columns: B's; None where a stage is constant (CKA undefined)
    linear: list[list[float | None]]
    linear_diagonal: dict[str, float | None]  # same-named stages
    linear_debiased: list[list[float | None]]
    linear_debiased_diagonal: dict[str, float | None]
    rbf_diagonal: dict[str, float] | None = None  # only when asked for

    def to_json(self) -> dict[str, Any]:
        """The numbers written to ``cka.json`` (and returned by :func:`run_cka`).

        Returns:
            A new dict: runs, names, split, n, stages_A, stages_B, estimator, linear,
            linear_diagonal, linear_debiased, linear_debiased_diagonal and, when computed,
            rbf_diagonal.
        """
        result: dict[str, Any] = {
            "runs": {"A": self.runs[0], "B": self.runs[1]},
            "names": list(self.names),
            "split": self.split,
            "n": self.n,
            "stages_A": self.stages_a,
            "stages_B": self.stages_b,
            "estimator": ESTIMATOR,
            "linear": self.linear,
            "linear_diagonal": self.linear_diagonal,
            "linear_debiased": self.linear_debiased,
            "linear_debiased_diagonal": self.linear_debiased_diagonal,
        }
        if self.rbf_diagonal is not None:
            result["rbf_diagonal"] = self.rbf_diagonal
        return result


def _accumulate(
    per_model: Sequence[Batches], stages_a: list[str], stages_b: list[str]
) -> CKAAccumulator:
    """The CKA statistics of A's and B's stages (``A:<stage>``, ``B:<stage>``), batch by batch."""
    acc = CKAAccumulator()
    for ba, bb in zip(per_model[0], per_model[1], strict=True):
        acc.update({**{f"A:{s}": ba[s] for s in stages_a}, **{f"B:{s}": bb[s] for s in stages_b}})
    return acc


def _cross(
    acc: CKAAccumulator, stages_a: list[str], stages_b: list[str], debiased: bool
) -> tuple[list[list[float | None]], dict[str, float | None]]:
    """(the full A x B matrix, the same-named stages) of one estimator."""
    matrix = [[_defined(acc, f"A:{sa}", f"B:{sb}", debiased) for sb in stages_b] for sa in stages_a]
    diagonal = {s: _defined(acc, f"A:{s}", f"B:{s}", debiased) for s in stages_a if s in stages_b}
    return matrix, diagonal


def _rbf_diagonal(
    per_model: Sequence[Batches], stages_a: list[str], stages_b: list[str], n: int
) -> dict[str, float]:
    """RBF-kernel CKA of same-named stages (n x n Gram matrices: at most RBF_MAX_N samples)."""
    if n > RBF_MAX_N:
        raise CKAError(f"--rbf needs n <= {RBF_MAX_N} (n x n Gram matrices); this split has {n}")
    full = [
        {s: np.concatenate([bt[s] for bt in pm]) for s in st}
        for pm, st in zip(per_model, (stages_a, stages_b), strict=True)
    ]
    return {s: rbf_cka(full[0][s], full[1][s]) for s in stages_a if s in stages_b}


def compute_cka(
    per_model: Sequence[Batches],
    *,
    names: tuple[str, str],
    runs: tuple[str, str],
    split: str,
    n_ids: int,
    rbf: bool = False,
) -> CKAResult:
    """Cross-model CKA (linear, biased and debiased; RBF optionally) of two models' stages on
    the same crystals (pure: no I/O).

    Args:
        per_model: A's and B's stage outputs (:func:`model_stages`), batched alike.
        names: the runs' names (A, B).
        runs: their directories (reported as is).
        split: the split's name.
        n_ids: the number of crystals asked for (checked against the samples collected).
        rbf: also compute RBF-kernel CKA of the same-named stages.

    Returns:
        A :class:`CKAResult`.

    Raises:
        CKAError: the samples do not match the ids, every stage is constant in a model, or
            ``rbf`` with more than RBF_MAX_N samples.
    """
    stages_a = [s for s in STAGES if s in per_model[0][0]]
    stages_b = [s for s in STAGES if s in per_model[1][0]]
    acc = _accumulate(per_model, stages_a, stages_b)
    n = acc.n
    if n != n_ids:
        raise CKAError(f"collected {n} samples for {n_ids} ids")
    # a stage constant over these crystals (e.g. after a couple of epochs) has no CKA (None);
    # the other stages still do
    linear, linear_diagonal = _cross(acc, stages_a, stages_b, False)
    debiased, debiased_diagonal = _cross(acc, stages_a, stages_b, True)
    if all(v is None for v in linear_diagonal.values()):
        raise CKAError(f"every stage is constant in one of the two models over these {n} samples")
    return CKAResult(
        names=names,
        runs=runs,
        split=split,
        n=n,
        stages_a=stages_a,
        stages_b=stages_b,
        linear=linear,
        linear_diagonal=linear_diagonal,
        linear_debiased=debiased,
        linear_debiased_diagonal=debiased_diagonal,
        rbf_diagonal=_rbf_diagonal(per_model, stages_a, stages_b, n) if rbf else None,
    )


def cka_table(res: CKAResult) -> str:
    """The same-named stages' CKA (linear, debiased, RBF) as a Markdown table.

    Returns:
        The table's text.
    """
    rbf = res.rbf_diagonal or {}
    rows = [
        [s, res.linear_diagonal[s], res.linear_debiased_diagonal[s], rbf.get(s)]
        for s in res.linear_diagonal
    ]
    return table(["stage", "linear CKA", "debiased", "RBF"], rows)


def cka_markdown(res: CKAResult) -> str:
    """The report ``cka.md`` (before :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    a, b = res.names
    return "\n".join(
        [
            f"# CKA: {a} vs {b} on the {res.split} split (n = {res.n})",
            "",
            "Same-named stages (diagonal):",
            "",
            cka_table(res),
            "",
            "Full cross matrix (linear CKA; rows: A's stages, columns: B's):",
            "",
            table(
                ["A \\ B", *res.stages_b],
                [[sa, *row] for sa, row in zip(res.stages_a, res.linear, strict=True)],
            ),
            "",
            "![heatmap](cka_heatmap.png)",
            "",
            "Reading it with the plan: `text_fine` low (0.2-0.4) means fusion acts; `text_final` / `fused` "
            "falling from ~0.98 to 0.85-0.92 means the fusion's effect survives to the end.",
        ]
    )


def run_cka(
    runs: list[str],
    out: Path,
    names: list[str] | None = None,
    split: str = "test",
    rbf: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Cross-model CKA matrix (linear, biased and debiased; RBF optionally) on run A's split;
    writes ``cka.{json,md}`` and ``cka_heatmap.png`` into ``out`` and prints the table.

    Returns:
        The numbers written to ``cka.json`` (:meth:`CKAResult.to_json`).
    """
    a, b = (locate(p, names[i] if names else None) for i, p in enumerate(runs))
    if a.name == b.name:
        b.name = f"{b.name} (B)"
    ids = same_ids(a, b, split)
    dev = resolve_device(device)
    res = compute_cka(
        [model_stages(run, ids, dev) for run in (a, b)],
        names=(a.name, b.name),
        runs=(str(a.path), str(b.path)),
        split=split,
        n_ids=len(ids),
        rbf=rbf,
    )
    plot_cka_heatmap(res, out / "cka_heatmap.png")
    result = res.to_json()
    write_outputs(out, "cka", result, cka_markdown(res))
    print(f"CKA {a.name} vs {b.name}, {split} split, n={res.n}")
    print(cka_table(res))
    return result


def plot_cka_heatmap(res: CKAResult, path: Path) -> None:
    """Draw the linear CKA cross matrix as a heatmap into ``path``.

    Returns:
        None; it writes the figure.
    """
    plt = pyplot()
    m = np.array(res.linear, dtype=float)  # None (undefined) -> nan
    fig, ax = plt.subplots(figsize=(1.1 * len(res.stages_b) + 2, 0.9 * len(res.stages_a) + 1.5))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(m.shape[1]), res.stages_b, rotation=35, ha="right")
    ax.set_yticks(range(m.shape[0]), res.stages_a)
    ax.set_xlabel(res.names[1])
    ax.set_ylabel(res.names[0])
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
    ax.set_title(f"CKA on the {res.split} split (n={res.n})")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
