"""``analyze attention --runs RUN --ids ID...``: atom <-> token attention of a fused run.

The attention blocks run ``F.scaled_dot_product_attention``, which returns no weights. Hooks on
every :class:`~fusion_tuner.models.fusion.CrossAttention` of the model record the inputs each
one gets during an ordinary eval-mode forward pass, and
:meth:`~fusion_tuner.models.fusion.CrossAttention.weights` recomputes its softmax from the same
projections and padding mask: the numbers the forward pass uses (checked against a manual
softmax(QKᵀ/√d) and the block's output in ``tests/integration/test_attention.py``).

Blocks: ``fine_grained.atom_to_token`` (atoms × tokens), ``fine_grained.token_to_atom``
(tokens × atoms), ``cross_modal.graph_to_tokens`` (the pooled graph over tokens),
``cross_modal.text_to_atoms`` (the pooled text over atoms) and ``middle_fusion.<layer>``
(atoms × tokens after that ALIGNN layer), whichever the run has. Per crystal: a figure (atoms ×
tokens, element symbols and word pieces on the axes, heads averaged) and ``<id>.npz`` (every
block's weights per head, real atoms and tokens only). The summary: the share of an atom's
attention on the tokens that spell its own element symbol, against the share a uniform
attention would give.

:func:`attention_maps` evaluates the model, :func:`compute_attention` summarises the maps (an
:class:`AttentionSummary`), :func:`plot_crystal`, :func:`attention_table` and
:func:`attention_markdown` render, :func:`save_arrays` writes a crystal's weights, and
:func:`run_attention` does all of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.analysis.outputs import write_outputs
from fusion_tuner.analysis.runs import datamodule_for
from fusion_tuner.errors import AnalysisError
from fusion_tuner.io import pyplot, save_figure
from fusion_tuner.markdown import table
from fusion_tuner.models.fusion import CrossAttention
from fusion_tuner.rundir import Run, locate
from fusion_tuner.runtime import resolve_device

# block name -> (query kind, key kind)
BLOCKS = {
    "fine_grained.atom_to_token": ("atoms", "tokens"),
    "fine_grained.token_to_atom": ("tokens", "atoms"),
    "cross_modal.graph_to_tokens": ("graph", "tokens"),
    "cross_modal.text_to_atoms": ("text", "atoms"),
}
# the figure's atoms x tokens panels and the summary's block: (block, transpose to atoms x tokens)
ATOM_TOKEN = {"fine_grained.atom_to_token": False, "fine_grained.token_to_atom": True}


def element_symbol(z: int) -> str:
    """The element symbol of atomic number ``z`` (jarvis-tools' element data)."""
    from fusion_tuner.data.graphs import atomic_numbers

    by_z = {v: k for k, v in atomic_numbers().items()}
    return by_z.get(z, str(z))


@dataclass
class CrystalAttention:
    id: str
    elements: list[str]
    tokens: list[str]
    # block -> (heads, queries, keys) weights, real atoms and tokens only
    weights: dict[str, np.ndarray] = field(repr=False)
    # atoms x tokens, heads averaged: the share on tokens of the atom's own element
    own_element_share: float | None = None
    uniform_share: float | None = None


@dataclass(frozen=True)
class AttentionSummary:
    """Every number of ``attention.json``: the blocks, one row per crystal and the means."""

    run: str
    blocks: list[str]
    crystals: list[dict[str, Any]]
    own_element_share: float | None
    uniform_share: float | None


def _block_name(name: str) -> str:
    if name.startswith("middle_fusion."):
        return name.removesuffix(".attn")
    return name


def capture(model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
    """One eval forward pass of ``batch``; every attention block's (B, h, Q, K) weights."""
    got: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, CrossAttention):

            def hook(mod, args, _out, name=name) -> None:
                got[_block_name(name)] = mod.weights(*args).cpu()

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for h in hooks:
            h.remove()
    return got


def _clean(piece: str) -> str:
    return piece.removeprefix("##")


def own_element_share(
    weights: np.ndarray, elements: list[str], tokens: list[str]
) -> tuple[float, float] | None:
    """(mean share of each atom's attention on tokens equal to its element symbol, the share
    uniform attention would give) over atoms whose element appears among the tokens; None
    when no atom's symbol is a token. ``weights``: (atoms, tokens), rows summing to 1."""
    lowered = [_clean(t).lower() for t in tokens]
    shares, uniform = [], []
    for a, el in enumerate(elements):
        own = np.array([t == el.lower() for t in lowered])
        if own.any():
            shares.append(float(weights[a, own].sum()))
            uniform.append(float(own.mean()))
    if not shares:
        return None
    return float(np.mean(shares)), float(np.mean(uniform))


def attention_maps(run: Run, ids: list[str], device: str = "auto") -> list[CrystalAttention]:
    """The attention weights of ``run``'s best model on the crystals ``ids``."""
    if not run.config.text.enabled:
        raise AnalysisError(
            f"{run.name} is a graph-only run (text=none): it has no atom <-> token attention"
        )
    dm = datamodule_for(run)
    unknown = [i for i in ids if i not in dm.graphs.row_of]
    if unknown:
        raise AnalysisError(
            f"{run.name}: ids not in its data: {', '.join(unknown[:5])} (ids are those of "
            "split.json / the predictions CSVs)"
        )
    dev = resolve_device(device)
    model = run.model.to(dev).eval()
    out: list[CrystalAttention] = []
    for batch in dm.loader(ids, batch_size=16, shuffle=False, num_workers=0):
        batch = batch.to(dev)
        got = capture(model, batch)
        if not got:
            raise AnalysisError(
                f"{run.name} has no attention block (fine-grained, cross-modal and middle "
                "fusion are all off)"
            )
        n_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).tolist()
        mask = batch.attention_mask.bool()
        for b in range(batch.num_graphs):
            cid = ids[len(out)]
            z = batch.z[batch.batch == b].tolist()
            n_tok = int(mask[b].sum())
            pieces = dm.tokenizer.convert_ids_to_tokens(batch.input_ids[b, :n_tok].tolist())
            weights = {}
            for name, w in got.items():
                q_kind, k_kind = BLOCKS.get(name, ("atoms", "tokens"))
                size = {"atoms": n_atoms[b], "tokens": n_tok, "graph": 1, "text": 1}
                weights[name] = w[b, :, : size[q_kind], : size[k_kind]].numpy()
            c = CrystalAttention(cid, [element_symbol(int(x)) for x in z], pieces, weights)
            at = _atoms_by_tokens(c)
            if at is not None:
                share = own_element_share(at, c.elements, c.tokens)
                if share is not None:
                    c.own_element_share, c.uniform_share = share
            out.append(c)
    return out


def _atoms_by_tokens(c: CrystalAttention) -> np.ndarray | None:
    """The summary's atoms x tokens map: fine-grained atom -> token weights (heads averaged),
    else the first middle-fusion block's; None without either."""
    if "fine_grained.atom_to_token" in c.weights:
        return c.weights["fine_grained.atom_to_token"].mean(0)
    middle = sorted(k for k in c.weights if k.startswith("middle_fusion."))
    return c.weights[middle[0]].mean(0) if middle else None


def _safe(cid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cid)


def plot_crystal(c: CrystalAttention, path: Path) -> None:
    """Atoms x tokens panels (heads averaged), element symbols and word pieces on the axes."""
    panels = []
    for name in c.weights:
        w = c.weights[name].mean(0)
        if name in ATOM_TOKEN:
            label = " (each token over atoms, transposed)" if ATOM_TOKEN[name] else ""
            panels.append((name + label, w.T if ATOM_TOKEN[name] else w))
        elif name.startswith("middle_fusion."):
            panels.append((name, w))
        elif name == "cross_modal.graph_to_tokens":
            panels.append((name + " (pooled graph)", w))
        elif name == "cross_modal.text_to_atoms":
            panels.append((name + " (pooled text; atoms)", w))
    plt = pyplot()
    n_tok = len(c.tokens)
    width = min(4 + 0.12 * n_tok, 60)
    heights = [max(1.2, 0.25 * p[1].shape[0] + 1) for p in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(width, sum(heights) + 1.5 * len(panels)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
        layout="constrained",
    )
    for ax, (name, w) in zip(axes[:, 0], panels, strict=True):
        im = ax.imshow(w, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        if "text_to_atoms" in name:
            ax.set_xticks(range(len(c.elements)), c.elements, fontsize=7)
            ax.set_yticks([0], ["text"], fontsize=7)
        else:
            ax.set_xticks(range(n_tok), c.tokens, rotation=90, fontsize=6)
            if w.shape[0] == len(c.elements):
                ax.set_yticks(range(len(c.elements)), c.elements, fontsize=7)
            else:
                ax.set_yticks([0], ["graph"], fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.suptitle(f"{c.id}: attention weights (mean over heads)", fontsize=10)
    save_figure(fig, path)


def _crystal_row(c: CrystalAttention) -> dict[str, Any]:
    """The summary's row of one crystal (its files are named after its id)."""
    stem = _safe(c.id)
    return {
        "id": c.id,
        "atoms": len(c.elements),
        "tokens": len(c.tokens),
        "own_element_share": c.own_element_share,
        "uniform_share": c.uniform_share,
        "figure": f"{stem}.png",
        "arrays": f"{stem}.npz",
    }


def compute_attention(run: str, maps: Sequence[CrystalAttention]) -> AttentionSummary:
    """The summary of the crystals' attention maps (pure: no I/O).

    Args:
        run: the run directory (reported as is).
        maps: the crystals' maps (:func:`attention_maps`), at least one.

    Returns:
        An :class:`AttentionSummary`: the first crystal's blocks, one row per crystal and the
        mean shares over the crystals that have one (None when none has).
    """
    rows = [_crystal_row(c) for c in maps]
    scored = [r for r in rows if r["own_element_share"] is not None]
    return AttentionSummary(
        run=run,
        blocks=sorted(maps[0].weights),
        crystals=rows,
        own_element_share=float(np.mean([r["own_element_share"] for r in scored]))
        if scored
        else None,
        uniform_share=float(np.mean([r["uniform_share"] for r in scored])) if scored else None,
    )


def save_arrays(c: CrystalAttention, path: Path) -> None:
    """Write the crystal's elements, tokens and every block's weights (``.`` in block names as
    ``__``) into the ``.npz`` ``path``, through a temporary file.

    Returns:
        None; it writes the file.
    """
    arrays = {name.replace(".", "__"): w for name, w in c.weights.items()}
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, elements=np.array(c.elements), tokens=np.array(c.tokens), **arrays)
    tmp.replace(path)


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def attention_table(summary: AttentionSummary) -> str:
    """One row per crystal: atoms, tokens and its shares, as a Markdown table.

    Returns:
        The table's text.
    """
    header = ["id", "atoms", "tokens", "own-element share", "uniform share"]
    rows = [
        [
            r["id"],
            r["atoms"],
            r["tokens"],
            _share(r["own_element_share"]),
            _share(r["uniform_share"]),
        ]
        for r in summary.crystals
    ]
    return table(header, rows)


def attention_markdown(summary: AttentionSummary, name: str) -> str:
    """The report ``attention.md`` of the run named ``name`` (before
    :func:`~fusion_tuner.markdown.safe_markdown`).

    Returns:
        The Markdown text, without a final newline.
    """
    return "\n".join(
        [
            f"# Attention of {name}",
            "",
            f"Blocks: {', '.join(summary.blocks)}.",
            "",
            attention_table(summary),
            "",
            "Own-element share: the mean share of an atom's attention (fine-grained atom → token, "
            "mean over heads) on the tokens equal to its element symbol; uniform share: what "
            "attention spread evenly over the real tokens would give. Over the crystals: "
            f"{_share(summary.own_element_share)} against {_share(summary.uniform_share)}.",
            "",
            *[f"![{r['id']}]({r['figure']})" for r in summary.crystals],
        ]
    )


def run_attention(
    run_path: str, ids: list[str], out: Path, device: str = "auto"
) -> AttentionSummary:
    """Compute, then write ``<id>.png`` and ``<id>.npz`` per crystal and
    ``attention.{json,md}`` into ``out``; print the summary table.

    Returns:
        The :class:`AttentionSummary` written to ``attention.json``.
    """
    run = locate(run_path)
    if not ids:
        raise AnalysisError("--ids: give at least one crystal id")
    maps = attention_maps(run, ids, device)
    summary = compute_attention(str(run.path), maps)
    out.mkdir(parents=True, exist_ok=True)
    for c, row in zip(maps, summary.crystals, strict=True):
        save_arrays(c, out / row["arrays"])
        plot_crystal(c, out / row["figure"])
    write_outputs(out, "attention", asdict(summary), attention_markdown(summary, run.name))
    print(attention_table(summary))
    return summary
