"""On-disk caches that are safe when many runs of a sweep start at once.

A cache entry is built by exactly one process: the others wait on a file lock and then load the
finished file. Files are written to a temporary name and renamed into place, so a half-written
entry is never visible. Entries are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def cache_key(settings: dict[str, Any]) -> str:
    """A short stable hash of everything that affects a cache entry."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    """Write text to a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
