"""fusion_tuner: reproducible tuning sweeps for a fused ALIGNN + text-encoder property model.

The public API lives in :mod:`fusion_tuner.api` and is re-exported here lazily, so that
``import fusion_tuner`` stays cheap and free of side effects.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("compose_config", "build_datamodule", "build_model", "train", "load_run", "load_checkpoint")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from fusion_tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'fusion_tuner' has no attribute {name!r}")
