"""Derived keys of a config: what a run computes with (hash, caps, widths, modality) and
which keys change nothing it computes."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any

from fusion_tuner.config.schema import Config
from fusion_tuner.io import stable_hash

# Keys that change how a run is tracked, shown or where its caches live, never what it computes:
# left out of the config hash and of what distinguishes the runs of a sweep.
RESULT_NEUTRAL_KEYS = (
    "logger",
    "trial",
    "trainer.progress",
    "trainer.keep_last_checkpoint",
    "trainer.start_over",
    # the trajectory is the single-process one (within float tolerance, see docs/runs.md)
    "trainer.devices",
    "dataset.cache_dir",
    "dataset.num_workers",
    # guards that refuse or allow inputs, never change what a run computes from them
    "dataset.max_table_bytes",
    "dataset.allow_outside_paths",
    "model.init_min_loaded",
    # base_sweep / base only record where a chained run's values came from: the values
    # themselves are set on their own keys
    "base_sweep",
    "base",
    # how a sweep decides and how many seeds it runs: no run computes differently
    "sweep",
)


# Keys that act only through the text branch: inert in a graph-only run (``text.enabled=false``).
TEXT_ONLY_KEYS = (
    "text",
    "fusion",
    "attention",
    "regularization.cross_modal_dropout",
    "regularization.fine_grained_dropout",
    "regularization.middle_fusion_dropout",
)


def modality(cfg: Config) -> str:
    """``graph+text`` (the fused model) or ``graph`` (``text=none``, ALIGNN alone)."""
    return "graph+text" if cfg.text.enabled else "graph"


def text_learning_rate(cfg: Config) -> float | None:
    """The learning rate of the text encoder's trainable weights when it has its own: a
    pretrained encoder (``text.model_name_or_path`` set) with ``text.learning_rate`` set. None:
    they train at ``scheduler.learning_rate`` with the rest (graph-only runs; the tiny encoder,
    randomly initialised and trained from scratch; ``text.learning_rate=null``)."""
    t = cfg.text
    if not t.enabled or t.model_name_or_path is None or t.learning_rate is None:
        return None
    return float(t.learning_rate)


def inert_text_keys(cfg: Config) -> list[str]:
    """In a graph-only run, the text-dependent keys set away from their schema defaults: they
    had no effect (e.g. ``fusion.middle_fusion_layers`` of e03 under ``text=none``). Empty for
    a fused run."""
    if cfg.text.enabled:
        return []
    ours, defaults = flatten(asdict(cfg)), flatten(asdict(Config()))
    return [
        key
        for key, value in sorted(ours.items())
        if key != "text.enabled"
        and any(key == k or key.startswith(f"{k}.") for k in TEXT_ONLY_KEYS)
        and value != defaults.get(key)
    ]


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"dotted.key": value}``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def is_result_neutral(key: str) -> bool:
    """True for a dotted key in (or under) :data:`RESULT_NEUTRAL_KEYS`."""
    return any(key == k or key.startswith(f"{k}.") for k in RESULT_NEUTRAL_KEYS)


def config_hash(cfg: Config | dict[str, Any]) -> str:
    """Hash of the resolved config without its result-neutral keys: two runs with the same
    hash compute the same thing."""
    raw = asdict(cfg) if isinstance(cfg, Config) else copy.deepcopy(cfg)
    for key in RESULT_NEUTRAL_KEYS:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return stable_hash(raw)


def max_epochs(cfg: Config) -> int:
    """``scheduler.epochs``, capped by ``budget.max_epochs``: a hard cap, also after a resume."""
    cap = cfg.budget.max_epochs
    return min(cfg.scheduler.epochs, cap) if cap is not None else cfg.scheduler.epochs


def max_structures(cfg: Config) -> int | None:
    """``dataset.limit`` capped by ``budget.max_structures`` (None: no limit)."""
    caps = [v for v in (cfg.dataset.limit, cfg.budget.max_structures) if v is not None]
    return min(caps) if caps else None


def model_width(cfg: Config, width: int, heads: int = 1) -> int:
    """``width`` times ``budget.width_scale`` (unchanged when unset), rounded to a multiple of
    ``heads`` and at least ``heads``."""
    scale = cfg.budget.width_scale
    if scale is None:
        return width
    return max(heads, round(width * scale / heads) * heads)
