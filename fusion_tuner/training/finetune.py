"""Fine-tuning: start a run from another run's best weights (``model.init_from``).

:func:`source_run` finds the run (a directory or a checkpoint) before any data is touched;
:func:`source_tokenizer` gives the source's saved tokenizer when the new run tokenises with it
(``init_scope=all`` with the same text model, so that loaded token embeddings keep meaning
the same tokens); :func:`load_matching` copies every tensor whose name and shape match (within
the scope) into the freshly built model and counts what was loaded, skipped and new;
:class:`GraphFreeze` keeps the graph encoder fixed for the first ``freeze_graph_epochs``
epochs (or the whole run) by switching ``requires_grad``, while the optimizer holds its
parameters from the start, so unfreezing and resuming stay exact.

The target normaliser is never loaded: the new run computes it from its own training split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusion_tuner.config import Config
from fusion_tuner.errors import RunError
from fusion_tuner.rundir import Run, locate

log = logging.getLogger("fusion_tuner")

GRAPH_ENCODER = ("embedding.", "alignn_layers.", "gcn_layers.")
NORMALIZER = ("target_mean", "target_std")


def source_run(cfg: Config) -> Run | None:
    """The run named by ``model.init_from`` (None for fresh weights)."""
    if not cfg.model.init_from:
        return None
    try:
        return locate(Path(cfg.model.init_from).expanduser())
    except RunError as exc:
        raise RunError(f"model.init_from={cfg.model.init_from}: {exc}") from None


def source_tokenizer(cfg: Config, source: Run | None) -> Any:
    """The source run's saved tokenizer when the new run should tokenise with it: all tensors
    are loaded and both runs use the same text model (else None: the run builds its own)."""
    if source is None or cfg.model.init_scope != "all":
        return None
    if not (cfg.text.enabled and source.config.text.enabled):  # a graph-only side: no tokens
        return None
    if source.config.text.model_name_or_path != cfg.text.model_name_or_path:
        return None
    folder = source.files.tokenizer if source.files else None
    if folder is None or not folder.is_dir():
        raise RunError(
            f"model.init_from={cfg.model.init_from}: the run has no tokenizer/ folder, so its "
            "text weights cannot be reused; use model.init_scope=graph_encoder"
        )
    from transformers import AutoTokenizer

    log.info("tokenising with the source run's tokenizer (%s)", folder)
    return AutoTokenizer.from_pretrained(str(folder))


def load_matching(
    model: nn.Module, source: Run, scope: str, min_loaded: float = 0.0
) -> dict[str, Any]:
    """Copy the source's tensors into ``model`` where name and shape match (within ``scope``).

    Returns the record kept in ``metrics.json`` as ``init``: ``loaded``, ``skipped`` (in both
    models but not loaded: ``skipped_shape`` names, ``skipped_scope`` and
    ``skipped_normalizer`` counts) and ``new`` (only in this model) add up to this model's
    tensors; ``unused`` counts the source's tensors this model has no place for.

    Raises:
        RunError: less than ``min_loaded`` (``model.init_min_loaded``) of the tensors in scope
            (the normaliser aside) could be loaded: the source has another architecture, and
            the run would train mostly from scratch. Nothing is loaded then.
    """
    src: dict[str, torch.Tensor] = source.checkpoint["model_state"]
    own = model.state_dict()
    match = _match(own, src, scope)
    in_scope = [
        n
        for n in own
        if n not in NORMALIZER and (scope != "graph_encoder" or n.startswith(GRAPH_ENCODER))
    ]
    fraction = len(match.loaded) / len(in_scope) if in_scope else 1.0
    if fraction < min_loaded:
        raise _too_few_loaded(source, scope, own, src, match, in_scope, fraction)
    model.load_state_dict(match.loaded, strict=False)
    record = _init_record(source, scope, own, src, match)
    record["loaded_fraction"] = round(fraction, 4)
    if fraction < 0.9:
        log.warning(
            "model.init_from loaded only %d of the %d tensors in scope %s (%.0f%%): the rest "
            "start from fresh weights; the source's architecture differs from this run's",
            len(match.loaded),
            len(in_scope),
            scope,
            100 * fraction,
        )
    return record


@dataclass
class _Match:
    """How this model's tensors that the source also has were sorted by :func:`_match`."""

    loaded: dict[str, torch.Tensor] = field(default_factory=dict)
    shape: list[str] = field(default_factory=list)  # names of another shape
    out_of_scope: int = 0
    normalizer: int = 0


def _match(own: dict[str, torch.Tensor], src: dict[str, torch.Tensor], scope: str) -> _Match:
    """Sort the tensors in both models: the normaliser, outside ``scope``, of another shape,
    or loaded."""
    match = _Match()
    for name, tensor in own.items():
        if name not in src:
            continue
        if name in NORMALIZER:
            match.normalizer += 1
        elif scope == "graph_encoder" and not name.startswith(GRAPH_ENCODER):
            match.out_of_scope += 1
        elif src[name].shape != tensor.shape:
            match.shape.append(name)
        else:
            match.loaded[name] = src[name]
    return match


def _too_few_loaded(
    source: Run,
    scope: str,
    own: dict[str, torch.Tensor],
    src: dict[str, torch.Tensor],
    match: _Match,
    in_scope: list[str],
    fraction: float,
) -> RunError:
    """The refusal of a source whose tensors fill too little of this model, with a hint at
    ``init_scope=graph_encoder`` when the whole graph encoder would load."""
    graph = [n for n in own if n.startswith(GRAPH_ENCODER)]
    hint = (
        f"model.init_scope=graph_encoder (all {len(graph)} graph-encoder tensors match), "
        if scope == "all" and graph and all(n in match.loaded for n in graph)
        else ""
    )
    return RunError(
        f"model.init_from={source.checkpoint_path} fills only {len(match.loaded)} of this model's "
        f"{len(in_scope)} tensors in scope {scope} ({fraction:.0%}; {len(match.shape)} of another "
        f"shape, {sum(1 for n in in_scope if n not in src)} absent from the source): its "
        "architecture differs, so the run would train mostly from scratch. Match the "
        f"source's arch/text/fusion/attention settings, or set {hint}or "
        "model.init_min_loaded=0 to start from the matching tensors anyway"
    )


def _init_record(
    source: Run,
    scope: str,
    own: dict[str, torch.Tensor],
    src: dict[str, torch.Tensor],
    match: _Match,
) -> dict[str, Any]:
    """The ``init`` record of :func:`load_matching` (less ``loaded_fraction``), logged."""
    shape, out_of_scope, normalizer = match.shape, match.out_of_scope, match.normalizer
    record = {
        "from": str(source.checkpoint_path),
        "scope": scope,
        "loaded": len(match.loaded),
        "skipped": len(shape) + out_of_scope + normalizer,
        "new": sum(1 for n in own if n not in src),
        "skipped_shape": shape,
        "skipped_scope": out_of_scope,
        "skipped_normalizer": normalizer,
        "unused": sum(1 for n in src if n not in own),
    }
    log.info(
        "model.init_from=%s (scope %s): loaded %d tensors, skipped %d (%d of another shape, %d "
        "outside the scope, %d normaliser), %d new; %d of the source's unused",
        record["from"],
        scope,
        record["loaded"],
        record["skipped"],
        len(shape),
        out_of_scope,
        normalizer,
        record["new"],
        record["unused"],
    )
    if shape:
        log.info("tensors of another shape (initialised as usual): %s", ", ".join(shape))
    return record


class GraphFreeze:
    """Keep the graph encoder's parameters fixed for the first ``epochs`` epochs (-1: all).

    Call :meth:`apply` at the start of every epoch; it sets ``requires_grad`` from the epoch
    number alone, so a resumed run freezes exactly as an uninterrupted one.
    """

    def __init__(self, model: nn.Module, epochs: int) -> None:
        self.epochs = epochs
        self.params = [
            p
            for n, p in model.named_parameters()
            if n.startswith(GRAPH_ENCODER) and p.requires_grad
        ]
        self.frozen: bool | None = None

    def apply(self, epoch: int) -> None:
        frozen = self.epochs == -1 or epoch <= self.epochs
        if self.epochs == 0 or frozen == self.frozen:
            return
        for p in self.params:
            p.requires_grad_(not frozen)
        if frozen:
            until = "the whole run" if self.epochs == -1 else f"epochs 1-{self.epochs}"
            log.info("graph encoder frozen for %s (%d tensors)", until, len(self.params))
        elif self.frozen is not None:
            log.info("graph encoder unfrozen from epoch %d", epoch)
        self.frozen = frozen
