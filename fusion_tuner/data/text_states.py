"""A disk store of a frozen text encoder's token states, built once and shared by every run.

One store per (encoder weights of the frozen part, tokenizer, texts and their variant,
``text.max_length``, layer boundary): ``<cache>/text_states/<key>/`` holds

* ``states.npy``: (total real tokens, D) float16, the states of every crystal's real tokens
  (no padding), crystal after crystal in the rows of the token-cache entry, read memory-mapped
  (``np.load(mmap_mode="r")``): a run's memory does not grow with the data set, and the runs of
  a sweep share the page cache;
* ``offsets.npy``: (C + 1,) int64, where each row's tokens start;
* ``manifest.json``: the key and its settings, the shapes, the file size and a sha256 of 64
  blocks sampled across ``states.npy``.

Built as the featurisation cache is (``data/cache.py``): under a file lock, so that concurrent
runs build it once; into a temporary folder renamed into place, so that no half-built store is
ever visible; and checked when opened (manifest, per-row token counts against the token entry,
file size, sampled checksum): a damaged store is moved aside as ``<key>.corrupt-<time>``, named
in a warning, and rebuilt. Encoding needs the model, so the caller passes ``encode``; this
module knows only arrays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.data.cache import cache_lock, quarantine
from fusion_tuner.errors import DataError
from fusion_tuner.io import atomic_write_dir, atomic_write_text

log = logging.getLogger(__name__)

STORE_VERSION = 1
STATES, OFFSETS, MANIFEST = "states.npy", "offsets.npy", "manifest.json"
_SAMPLED_BLOCKS, _BLOCK = 64, 1 << 16

# rows -> (B, L, D) states of those rows' tokens (float, on any device); row i's real tokens
# are its first lengths[row] positions
Encode = Callable[[list[int]], torch.Tensor]


def _sampled_sha256(path: Path) -> str:
    """sha256 of up to 64 blocks of 64 KiB spread evenly over the file (first and last
    included): catches a truncated or overwritten file without reading gigabytes."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    n = min(_SAMPLED_BLOCKS, max(1, math.ceil(size / _BLOCK)))
    starts = sorted({int(s) for s in np.linspace(0, max(size - _BLOCK, 0), n)})
    with open(path, "rb") as fh:
        for start in starts:
            fh.seek(start)
            digest.update(fh.read(_BLOCK))
    return digest.hexdigest()


def store_bytes(lengths: np.ndarray, hidden: int) -> int:
    """Bytes of a store's states for crystals of ``lengths`` real tokens (float16)."""
    return int(np.asarray(lengths).sum()) * hidden * 2


class TextStateStore:
    """A finished store, opened read-only; :meth:`gather` serves rows.

    Picklable for data-loader workers: the memory map is dropped and each process opens its own
    on first use.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], offsets: np.ndarray) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.offsets = offsets
        self._states: np.ndarray | None = None

    @property
    def states(self) -> np.ndarray:
        """(total tokens, D) float16, memory-mapped."""
        if self._states is None:
            self._states = np.load(self.path / STATES, mmap_mode="r")
        return self._states

    @property
    def nbytes(self) -> int:
        return int(self.manifest["states_bytes"])

    @property
    def hidden(self) -> int:
        return int(self.manifest["hidden"])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def gather(self, rows: Sequence[int]) -> torch.Tensor:
        """(sum of the rows' real tokens, D) float16: the rows' states, concatenated in order."""
        o, s = self.offsets, self.states
        parts = [s[o[r] : o[r + 1]] for r in rows]
        return torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, self.hidden)))

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "manifest": self.manifest, "offsets": self.offsets}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["manifest"], state["offsets"])

    @classmethod
    def open(cls, path: Path, key: str, lengths: np.ndarray, hidden: int) -> TextStateStore:
        """Open the store at ``path`` and check it against what the caller expects; raise
        :class:`DataError` naming the first problem."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"unreadable {MANIFEST}: {type(exc).__name__}: {exc}") from exc
        expected = {
            "version": STORE_VERSION,
            "key": key,
            "rows": len(lengths),
            "hidden": hidden,
            "tokens": int(np.asarray(lengths).sum()),
        }
        for field, value in expected.items():
            if manifest.get(field) != value:
                raise DataError(f"{MANIFEST} has {field}={manifest.get(field)!r}, not {value!r}")
        try:
            offsets = np.load(path / OFFSETS)
        except (OSError, ValueError) as exc:
            raise DataError(f"unreadable {OFFSETS}: {type(exc).__name__}: {exc}") from exc
        if offsets.shape != (len(lengths) + 1,) or not np.array_equal(np.diff(offsets), lengths):
            raise DataError(f"{OFFSETS} does not match the token counts of the token entry")
        states = path / STATES
        size = states.stat().st_size if states.is_file() else -1
        if size != manifest.get("file_bytes"):
            raise DataError(f"{STATES} has {size} bytes, not {manifest.get('file_bytes')}")
        if _sampled_sha256(states) != manifest.get("sampled_sha256"):
            raise DataError(f"{STATES} does not match its checksum")
        store = cls(path, manifest, offsets)
        if store.states.shape != (expected["tokens"], hidden) or store.states.dtype != np.float16:
            raise DataError(f"{STATES} holds {store.states.shape} {store.states.dtype}")
        return store


def _write_store(
    folder: Path,
    key: str,
    settings: dict[str, Any],
    lengths: np.ndarray,
    hidden: int,
    encode: Encode,
    batch_size: int,
) -> float:
    """Encode every row and write the store's three files into ``folder``; returns seconds."""
    start = time.perf_counter()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])
    states = np.lib.format.open_memmap(
        folder / STATES, mode="w+", dtype=np.float16, shape=(total, hidden)
    )
    order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    report_every = max(1, len(batches) // 10)
    for n, rows in enumerate(batches, start=1):
        out = encode(rows)  # (B, L, D)
        if out.shape[0] != len(rows) or out.shape[-1] != hidden:
            raise DataError(f"encoder returned {tuple(out.shape)} for {len(rows)} rows")
        block = out.detach().to(torch.float16).cpu().numpy()
        for i, row in enumerate(rows):
            states[offsets[row] : offsets[row + 1]] = block[i, : lengths[row]]
        if n % report_every == 0 or n == len(batches):
            done = sum(len(b) for b in batches[:n])
            elapsed = time.perf_counter() - start
            log.info(
                "text store: encoded %d/%d crystals (%.1f crystals/s, %.0f s left)",
                done,
                len(order),
                done / elapsed,
                elapsed / done * (len(order) - done),
            )
    states.flush()
    del states
    np.save(folder / OFFSETS, offsets)
    seconds = time.perf_counter() - start
    manifest = {
        "version": STORE_VERSION,
        "key": key,
        "settings": settings,
        "rows": len(lengths),
        "hidden": hidden,
        "tokens": total,
        "dtype": "float16",
        "states_bytes": total * hidden * 2,
        "file_bytes": (folder / STATES).stat().st_size,
        "sampled_sha256": _sampled_sha256(folder / STATES),
        "build_seconds": round(seconds, 2),
    }
    atomic_write_text(json.dumps(manifest, indent=1), folder / MANIFEST)  # last: marks it done
    return seconds


@dataclass
class StoreResult:
    """What :func:`load_or_build_states` did."""

    store: TextStateStore | None
    built: bool = False
    seconds: float = 0.0
    # why there is no store (over the disk budget, not enough free space)
    reason: str | None = None


def load_or_build_states(
    root: Path,
    key: str,
    settings: dict[str, Any],
    lengths: np.ndarray,
    hidden: int,
    encode: Encode,
    batch_size: int = 64,
    max_bytes: int | None = None,
) -> StoreResult:
    """Open the store ``root/key``, or build it once (concurrent callers wait, then open it).

    Args:
        root: the folder of all stores (``<cache>/text_states``).
        key: the store's identity (a hash of ``settings``).
        settings: what the key was made of (recorded in the manifest).
        lengths: (C,) real tokens per row, in the token entry's row order.
        hidden: the encoder's state width D.
        encode: rows -> (B, L, D) states.
        batch_size: rows encoded at once while building.
        max_bytes: disk budget; a store that would exceed it (or the free space) is not built
            and the result names the reason.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    path = root / key
    if path.is_dir():
        try:
            return StoreResult(TextStateStore.open(path, key, lengths, hidden))
        except DataError:
            pass  # rebuilt below, under the lock
    need = store_bytes(lengths, hidden)
    if max_bytes is not None and need > max_bytes:
        return StoreResult(None, reason=f"needs {need / 1e9:.2f} GB, above the budget")
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if need > 0.95 * free:
        return StoreResult(
            None, reason=f"needs {need / 1e9:.2f} GB but {root} has {free / 1e9:.2f} GB free"
        )
    with cache_lock(path):
        if path.is_dir():
            try:
                return StoreResult(TextStateStore.open(path, key, lengths, hidden))
            except DataError as exc:
                quarantine(path, str(exc))
        seconds = [0.0]

        def write(folder: Path) -> None:
            seconds[0] = _write_store(folder, key, settings, lengths, hidden, encode, batch_size)

        atomic_write_dir(path, write)
        return StoreResult(TextStateStore.open(path, key, lengths, hidden), True, seconds[0])
