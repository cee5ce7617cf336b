"""Attach the disk store of a frozen text encoder's outputs to a run (``text.store=auto``).

Before training, for an encoder that is frozen (``text.freeze=true``) or partially frozen
(``text.train_last_n_layers=k``): find or build (once, under a lock, shared by every run and
sweep) the store of what the frozen part outputs for every crystal of the data set
(``data/text_states.py``), check on a few crystals that the model's outputs from the store equal
its direct outputs, and let the loaders serve the stored states with every batch. From then on
the embeddings and frozen layers never run: a frozen encoder runs no layer, a partially frozen
one only its top ``k`` layers.

The store's key: the frozen part's weights (sha256 over its tensors: a hub model's weights are
the same in every run of a sweep; the random tiny BERT's depend on the seed, so each seed has its
own store), the token entry (which covers the tokenizer, the texts, their source and variant,
and ``text.max_length``), the layer boundary and the encoder's class.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from fusion_tuner.config import Config
from fusion_tuner.data.module import CrystalDataModule
from fusion_tuner.data.text_states import (
    STORE_VERSION,
    StoreResult,
    TextStateStore,
    load_or_build_states,
    store_bytes,
)
from fusion_tuner.io import stable_hash
from fusion_tuner.models.text import TextEncoder

log = logging.getLogger("fusion_tuner")

# largest |store - direct| / max |direct| accepted on the check (float16 states: ~1e-3)
CHECK_TOLERANCE = 1e-2
CHECK_ROWS = 4


def _padded_tokens(
    dm: CrystalDataModule, rows: list[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) token ids and mask of ``rows``, padded to their longest."""
    ptr, ids = dm.tokens["token_ptr"], dm.tokens["token_ids"]
    lengths = [int(ptr[r + 1] - ptr[r]) for r in rows]
    out = torch.full((len(rows), max(lengths)), dm.info.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(out)
    for i, (r, n) in enumerate(zip(rows, lengths, strict=True)):
        out[i, :n] = ids[int(ptr[r]) : int(ptr[r + 1])].long()
        mask[i, :n] = 1
    return out.to(device), mask.to(device)


def _check(
    store: TextStateStore, dm: CrystalDataModule, encoder: TextEncoder, device: torch.device
) -> float:
    """Largest relative difference between the encoder's final token states from the store
    and computed directly, on the first few crystals (eval mode)."""
    rows = list(range(min(CHECK_ROWS, len(store))))
    ids, mask = _padded_tokens(dm, rows, device)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            direct, _ = encoder(ids, mask)
            encoder.accepts_states = True
            stored, _ = encoder(ids, mask, store.gather(rows).to(device))
    finally:
        encoder.accepts_states = False
        encoder.train(was_training)
    real = mask.bool()
    scale = float(direct[real].abs().max().clamp_min(1e-6))
    return float((stored[real] - direct[real]).abs().max()) / scale


def prepare_text_states(
    cfg: Config, dm: CrystalDataModule, encoder: TextEncoder, device: torch.device
) -> dict[str, Any]:
    """Attach the store of ``encoder``'s frozen part to ``dm``'s loaders when ``text.store``
    allows it; returns what happened (recorded under ``text_store`` in ``data_report.json``)."""
    t = cfg.text
    dm.attach_text_states(None)
    encoder.accepts_states = False
    boundary = encoder.frozen_layers
    if t.store == "off":
        return {"used": False, "reason": "text.store=off"}
    if boundary is None:
        return {"used": False, "reason": "every text-encoder weight trains"}
    lengths = np.diff(dm.tokens["token_ptr"].numpy())
    settings = _store_settings(dm, encoder, boundary)
    key = stable_hash(settings)
    need = store_bytes(lengths, encoder.dim)
    log.info(
        "text store %s: %d crystals, %.1f KB per crystal, %.1f MB in all (float16, real tokens)",
        key,
        len(lengths),
        need / max(len(lengths), 1) / 1e3,
        need / 1e6,
    )
    result = _load_or_build(cfg, dm, encoder, device, key, settings, lengths)
    report: dict[str, Any] = {
        "key": key,
        "bytes": need,
        "bytes_per_crystal": need / max(len(lengths), 1),
        "frozen_layers": settings["frozen_layers"],
    }
    if result.store is None:
        return report | _not_stored(result, t.store_max_gb)
    error = _check(result.store, dm, encoder, device)
    if error > CHECK_TOLERANCE:
        return report | _check_failed(result.store, error)
    return report | _attach(dm, encoder, result, error)


def _store_settings(dm: CrystalDataModule, encoder: TextEncoder, boundary: int) -> dict[str, Any]:
    """What the store's key is computed from (see the module's docstring)."""
    return {
        "version": STORE_VERSION,
        "tokens": dm.report["cache"]["tokens"][0],
        "weights": encoder.frozen_identity(),
        "frozen_layers": "all" if boundary == -1 else boundary,
        "encoder": type(encoder.model).__name__,
        "hidden": encoder.dim,
    }


def _load_or_build(
    cfg: Config,
    dm: CrystalDataModule,
    encoder: TextEncoder,
    device: torch.device,
    key: str,
    settings: dict[str, Any],
    lengths: np.ndarray,
) -> StoreResult:
    """The store under ``key``, found or built by running the encoder's frozen part, within
    ``text.store_max_gb``; returns :func:`load_or_build_states`'s result."""
    budget = None if cfg.text.store_max_gb is None else int(cfg.text.store_max_gb * 1e9)

    def encode(rows: list[int]) -> torch.Tensor:
        return encoder.frozen_states(*_padded_tokens(dm, rows, device))

    return load_or_build_states(
        dm.cache_root / "text_states",
        key,
        settings,
        lengths,
        encoder.dim,
        encode,
        batch_size=cfg.batch.batch_size,
        max_bytes=budget,
    )


def _not_stored(result: StoreResult, store_max_gb: float | None) -> dict[str, Any]:
    """Warn that the store could not be kept (budget or disk); the report's fields for it."""
    log.warning(
        "text store not used: it %s (text.store_max_gb=%s); the text encoder runs in every "
        "batch instead. Raise text.store_max_gb or free disk space to store it",
        result.reason,
        store_max_gb,
    )
    return {
        "used": False,
        "reason": f"{result.reason} (text.store_max_gb={store_max_gb})",
    }


def _check_failed(store: TextStateStore, error: float) -> dict[str, Any]:
    """Warn that the store's outputs differ from the direct ones; the report's fields for it."""
    log.warning(
        "text store not used: outputs from %s differ from the direct computation by %.3g "
        "(relative, tolerance %g); the text encoder runs in every batch instead",
        store.path,
        error,
        CHECK_TOLERANCE,
    )
    return {"used": False, "reason": f"check failed: relative difference {error:.3g}"}


def _attach(
    dm: CrystalDataModule, encoder: TextEncoder, result: StoreResult, error: float
) -> dict[str, Any]:
    """Serve the checked store with every batch and let the encoder take its states; the
    report's fields for it."""
    dm.attach_text_states(result.store)
    encoder.accepts_states = True
    how = f"built in {result.seconds:.1f} s" if result.built else "found"
    log.info(
        "text store %s (%s): %s; the frozen part of the text encoder will not run again "
        "(check: relative difference %.2g)",
        result.store.path,
        how,
        f"{result.store.nbytes / 1e6:.1f} MB",
        error,
    )
    return {
        "used": True,
        "path": str(result.store.path),
        "built": result.built,
        "build_seconds": round(result.seconds, 2),
        "check_relative_difference": error,
    }
