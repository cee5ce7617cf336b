"""On-disk caches that are safe when many runs of a sweep start at once.

A cache entry is built by exactly one process: the others wait on a file lock and then load the
finished file. Files are written to a temporary name and renamed into place, so a half-written
entry is never visible. Entries are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fusion_tuner.io import atomic_torch_save


def load_or_build(path: Path, build: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Return ``(entry, loaded_from_cache)``; build and store the entry if absent.

    Concurrent callers with the same ``path`` build once: the first holds an exclusive lock on
    ``<path>.lock`` while building; the others block on it and then load the result.
    """
    if path.is_file():
        return torch.load(path, weights_only=True), True
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.is_file():
                return torch.load(path, weights_only=True), True
            entry = build()
            atomic_torch_save(entry, path)
            return entry, False
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
