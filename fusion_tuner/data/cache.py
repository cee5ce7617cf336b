"""On-disk caches that are safe when many runs of a sweep start at once, and that heal.

A cache entry is built by exactly one process: the others wait on a file lock and then load the
finished file. Files are written to a temporary name and renamed into place, so a half-written
entry is never visible. Entries are read with ``torch.load(weights_only=True)`` and checked; an
entry that cannot be read or fails its check (truncated, overwritten, written by other code) is
moved aside as ``<name>.corrupt-<time>``, named in a warning, and rebuilt once under the lock.
Entries are memory-mapped when read (``torch.load(..., weights_only=True, mmap=True)``): their
tensors live in the page cache, shared by the runs of a sweep and by data-loader workers, and are
read on first touch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from fusion_tuner.io import atomic_torch_save, exclusive_lock

log = logging.getLogger(__name__)

Check = Callable[[dict[str, Any]], None]


def _read(path: Path, check: Check | None) -> tuple[dict[str, Any] | None, str | None]:
    """(entry, None) when ``path`` loads and passes ``check``; (None, why) otherwise."""
    try:
        entry = torch.load(path, weights_only=True, mmap=True)
        if not isinstance(entry, dict):
            raise ValueError(f"holds a {type(entry).__name__}, not a cache entry")
        if check is not None:
            check(entry)
    except Exception as exc:  # any failure to read means: rebuild
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, f"{type(exc).__name__}: {text}"[:300]
    return entry, None


@contextlib.contextmanager
def cache_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock on ``<path>.lock`` (blocking until the holder releases it)."""
    with exclusive_lock(path.with_name(path.name + ".lock")):
        yield


def quarantine(path: Path, why: str) -> Path:
    """Move an unusable cache file aside (kept for inspection) and say so."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    log.warning(
        "cache entry %s is unusable (%s); moved it to %s and rebuilding", path, why, aside.name
    )
    return aside


def load_or_build(
    path: Path, build: Callable[[], dict[str, Any]], check: Check | None = None
) -> tuple[dict[str, Any], bool]:
    """Return ``(entry, loaded_from_cache)``; build and store the entry if absent or unusable.

    Concurrent callers with the same ``path`` build once: the first holds an exclusive lock on
    ``<path>.lock`` while building; the others block on it and then load the result.

    Args:
        path: the cache file.
        build: makes the entry (a dict of tensors, lists and plain values).
        check: raises when a loaded entry is not what the caller expects.
    """
    if path.is_file():
        entry, _ = _read(path, check)
        if entry is not None:
            return entry, True
    with cache_lock(path):
        if path.is_file():
            entry, why = _read(path, check)
            if entry is not None:
                return entry, True
            quarantine(path, why or "unreadable")
        entry = build()
        atomic_torch_save(entry, path)
        return entry, False
