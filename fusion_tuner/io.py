"""Small I/O helpers every layer uses: atomic writes, figures, a stable hash, the one file lock.

Every file the package writes goes to a temporary name in the same folder (unique per process
and call) and is renamed into place, so a reader never sees a half-written file and two
processes never share a temporary file. The temporary file (made 0600 by ``mkstemp``) gets the
mode an ordinary ``open`` would give under the process umask before the rename, so results are
as readable as any other file the user writes (0644 under umask 022).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def _atomic_write(path: Path, mode: str, write: Callable[[IO[Any]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            write(fh)
        os.chmod(tmp, 0o666 & ~process_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _out_of_space(exc):
            from fusion_tuner.rerun import resume_hint

            free = shutil.disk_usage(path.parent).free / 2**20
            raise OSError(
                errno.ENOSPC,
                f"no space left on device while writing {path} ({free:.1f} MiB free in "
                f"{path.parent}); free some space (old sweeps' last.pt files are the usual "
                f"culprits) and {resume_hint()}: the run resumes",
            ) from exc
        raise


def _out_of_space(exc: BaseException) -> bool:
    """True when a failed write ran out of disk (torch reports it as 'unexpected pos')."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return isinstance(exc, RuntimeError) and "unexpected pos" in str(exc)


def atomic_write_dir(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary folder beside ``path``, then rename it into place
    (replacing an older ``path``), so ``path`` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX))
    try:
        write(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _out_of_space(exc):
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path}") from exc
        raise
    _chmod_tree(tmp)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.{os.getpid()}.old{TMP_SUFFIX}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def process_umask() -> int:
    """The process umask, read without changing it where Linux shows it (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_tree(root: Path) -> None:
    """Give a folder made by ``mkdtemp`` (0700) the mode ``mkdir`` would give it under the
    process umask (what ``write`` made inside it already has ordinary modes)."""
    os.chmod(root, 0o777 & ~process_umask())


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files and folders that killed atomic writes left in ``folder``
    (call it only while no other process writes there); returns what was removed."""
    stale = sorted(Path(folder).glob(f".*{TMP_SUFFIX}"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    _atomic_write(path, "w", lambda fh: fh.write(text))


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    _atomic_write(path, "wb", lambda fh: fh.write(data))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file and a rename."""
    import torch

    _atomic_write(path, "wb", lambda fh: torch.save(obj, fh))


def write_json(path: Path, data: Any) -> None:
    """Indented JSON (numpy scalars and paths converted), written atomically."""
    atomic_write_text(json.dumps(data, indent=1, default=_json_default) + "\n", path)


def write_csv(path: Path, columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> None:
    """A CSV with a header row; keys of ``rows`` outside ``columns`` are ignored."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(buf.getvalue(), path)


def save_figure(fig: Any, path: Path, **kwargs: Any) -> None:
    """Save a matplotlib figure as PNG through a temporary file, then close it."""
    import matplotlib.pyplot as plt

    kwargs.setdefault("dpi", 110)
    kwargs.setdefault("bbox_inches", "tight")
    try:
        _atomic_write(path, "wb", lambda fh: fig.savefig(fh, format="png", **kwargs))
    finally:
        plt.close(fig)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short SHA-256 of ``obj``'s sorted JSON form: the same settings give the same key."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _json_default(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class LockHeld(Exception):
    """:func:`exclusive_lock` with ``wait=False`` found the lock held by a live process.

    Attributes:
        path: the lock file.
        owner: what the holder wrote into it (``""`` when it wrote nothing).
    """

    def __init__(self, path: Path, owner: str) -> None:
        super().__init__(f"{path} is held by {owner or 'another process'}")
        self.path = path
        self.owner = owner


@contextlib.contextmanager
def exclusive_lock(path: Path, *, wait: bool = True, owner: str | None = None) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on the file ``path`` for the ``with`` block.

    The lock dies with its process, so a killed holder never blocks the next one. The package's
    one lock: a run directory's ``.lock``, a search's ``.search.lock`` and the data caches'
    ``<entry>.lock`` all use it.

    Args:
        path: the lock file (created, with its folder, when missing; never deleted).
        wait: block until the holder releases it; False: raise :class:`LockHeld` at once.
        owner: written into the file once the lock is held (who holds it, for the message
            another process shows).

    Raises:
        LockHeld: ``wait=False`` and a live process holds the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise LockHeld(path, fh.read().strip()) from None
        try:
            if owner is not None:
                fh.seek(0)
                fh.truncate()
                fh.write(owner)
                fh.flush()
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def lock_owner(path: Path) -> str | None:
    """Who holds the :func:`exclusive_lock` on ``path`` now (the text it wrote, else
    ``"another process"``); None when the file is missing or no live process holds it."""
    if not Path(path).is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read().strip() or "another process"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None
