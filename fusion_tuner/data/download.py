"""The public data sets by name: list them, download one (``python -m fusion_tuner.data``, the
command in :mod:`fusion_tuner.cli.datasets`).

The data sets, their source URLs, sizes, licences and checksums are in
:mod:`fusion_tuner.data.registry`. A download

* goes into ``DIR/<file>`` (default: ``<data dir>/NAME``, the folder ``data://NAME/...`` names;
  the JARVIS figshare zips go to the JARVIS store folder that ``dataset=jarvis`` reads);
* is written to ``<file>.part`` first and resumed from there with an HTTP Range request when
  the connection drops (automatically, up to ``--retries`` times, and again on the next run);
* is checked (SHA-256, else the source repository's git blob id) before it is renamed into
  place: a mismatch deletes the ``.part`` file and leaves nothing at the destination;
* of a file with no recorded checksum (the JARVIS figshare zips) is kept with a warning that
  prints its SHA-256 and size.

Offline: fetch the URL elsewhere and place the file by hand at the path ``download`` names in
its error (``list`` then shows it as present). Exit status: 0 done, 1 a download or check
failed, 2 a bad argument.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from fusion_tuner import paths
from fusion_tuner.data.registry import DATASETS, SAMPLE_LICENCES, DataSet, RemoteFile
from fusion_tuner.words import plural

CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download that failed or a file that does not match its checksum."""


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def default_dir(ds: DataSet) -> Path:
    """Where ``download NAME`` puts the data set without ``--to``."""
    if ds.home == "jarvis":
        from fusion_tuner.data.records import jarvis_store_dir

        return jarvis_store_dir(None)
    return paths.data_root() / ds.name


def git_blob_id(path: Path) -> str:
    """The git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` + its bytes."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Check:
    """The outcome of checking a file against the registry: ok, or why not."""

    ok: bool
    verified: bool  # False: nothing recorded to check it by
    sha256: str
    detail: str


def check_file(path: Path, rf: RemoteFile) -> Check:
    """Compare ``path`` with ``rf``'s size, SHA-256 or git blob id (whatever is recorded)."""
    digest, size = sha256_of(path), path.stat().st_size
    if rf.size is not None and size != rf.size:
        return Check(False, True, digest, f"size {size} bytes, expected {rf.size}")
    if rf.sha256 is not None:
        if digest != rf.sha256:
            return Check(False, True, digest, f"SHA-256 {digest}, expected {rf.sha256}")
        return Check(True, True, digest, f"SHA-256 {digest} matches")
    if rf.git_blob is not None:
        blob = git_blob_id(path)
        if blob != rf.git_blob:
            return Check(False, True, digest, f"git blob id {blob}, expected {rf.git_blob}")
        return Check(True, True, digest, f"git blob id {blob} matches (SHA-256 {digest})")
    return Check(True, False, digest, f"no checksum recorded; SHA-256 {digest}, {size} bytes")


def _offline_hint(rf: RemoteFile, dest: Path) -> str:
    return (
        f"Offline: download {rf.url} elsewhere and place it at {dest}; the same download "
        "command then checks it and keeps it (list shows it as present)."
    )


def _transfer(rf: RemoteFile, part: Path, timeout: float) -> None:
    """Append the rest of ``rf`` to ``part`` (a Range request when ``part`` holds bytes)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(rf.url, headers={"User-Agent": "fusion_tuner"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and (rf.size is None or have == rf.size):
            return  # the .part file already holds the whole file
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the Range request: start again
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        got = 0
        with part.open("ab" if have else "wb") as fh:
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                got += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and got < expected:
            raise ConnectionError(f"connection closed after {got} of {expected} bytes")


def fetch_file(
    rf: RemoteFile,
    dest_dir: Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    say: Callable[[str], None] = print,
) -> Check:
    """Download ``rf`` into ``dest_dir`` (resumable, checked, atomic). Returns the check.

    Raises:
        DownloadError: no connection, an HTTP error, or a checksum mismatch (the ``.part``
            file is deleted then; nothing is left at the destination).
    """
    dest = dest_dir / rf.name
    part = dest_dir / (rf.name + ".part")
    dest_dir.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        try:
            if part.exists():
                say(f"resuming {rf.name} from byte {part.stat().st_size}")
            _transfer(rf, part, timeout)
            break
        except urllib.error.HTTPError as exc:
            raise DownloadError(
                f"{rf.url}: HTTP {exc.code} {exc.reason}. {_offline_hint(rf, dest)}"
            ) from None
        except urllib.error.URLError as exc:
            raise DownloadError(
                f"cannot reach {rf.url} ({exc.reason}); no network? {_offline_hint(rf, dest)}"
            ) from None
        except (ConnectionError, HTTPException, TimeoutError, OSError) as exc:
            attempt += 1
            kept = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise DownloadError(
                    f"{rf.url}: interrupted ({type(exc).__name__}: {exc}) after {retries} "
                    f"retries; {kept} bytes are kept in {part}: run the same command again to "
                    f"resume. {_offline_hint(rf, dest)}"
                ) from None
            say(f"{rf.name}: interrupted ({exc}); resuming from byte {kept}")
    check = check_file(part, rf)
    if not check.ok:
        part.unlink()
        raise DownloadError(
            f"{rf.url}: checksum mismatch, {check.detail}; the download was deleted and nothing "
            f"was written to {dest}. The source may have changed: check it, or place a known "
            "good copy there by hand."
        )
    os.replace(part, dest)
    return check


def download(
    name: str, to: Path | None = None, *, retries: int = 3, say: Callable[[str], None] = print
) -> Path:
    """Download every file of data set ``name``; files already present and matching are kept.

    Raises:
        KeyError: an unknown name. DownloadError: see :func:`fetch_file`.
    """
    ds = DATASETS[name]
    files = _current_files(ds, say)
    dest_dir = to if to is not None else default_dir(ds)
    for rf in files:
        dest = dest_dir / rf.name
        if dest.is_file():
            check = check_file(dest, rf)
            if not check.ok:
                raise DownloadError(
                    f"{dest} exists but does not match {rf.url}: {check.detail}. Delete it "
                    "and run again."
                )
            say(f"present: {dest} ({'verified' if check.verified else 'not verified'})")
            continue
        say(f"downloading {rf.url} ({human_size(rf.size)}) -> {dest}")
        check = fetch_file(rf, dest_dir, retries=retries, say=say)
        if check.verified:
            say(f"ok: {dest} ({check.detail})")
        else:
            say(
                f"WARNING: {dest} is NOT VERIFIED: {check.detail}. Nothing was recorded to "
                "check it against; compare the SHA-256 with the source if it matters."
            )
    return dest_dir


def _current_files(ds: DataSet, say: Callable[[str], None]) -> tuple[RemoteFile, ...]:
    """The files to fetch; for JARVIS, the figshare file the installed jarvis-tools reads."""
    if ds.figshare is None:
        return ds.files
    from jarvis.db.figshare import get_db_info

    info = get_db_info().get(ds.figshare)
    if not info:
        return ds.files
    url, member = info[0], info[1] + ".zip"
    if (url, member) == (ds.files[0].url, ds.files[0].name):
        return ds.files
    say(
        f"note: the installed jarvis-tools reads {ds.figshare} from {url} as {member}, not the "
        f"recorded {ds.files[0].name}; fetching what jarvis-tools reads"
    )
    return (RemoteFile(url, member),)


def status(ds: DataSet, to: Path | None = None) -> str:
    """``present`` / ``partial (k of n files)`` / ``absent`` in ``to`` or the default folder."""
    where = to if to is not None else default_dir(ds)
    have = sum((where / f.name).is_file() for f in ds.files)
    if have == len(ds.files):
        return f"present in {where}"
    if have:
        return f"partial ({have} of {plural(len(ds.files), 'file')}) in {where}"
    return "absent"


def size_text(ds: DataSet) -> str:
    """The data set's size, or what is known of it."""
    if ds.size is not None:
        return human_size(ds.size)
    known = [f.size for f in ds.files if f.size is not None]
    if not known:
        return "size not recorded"
    return f"over {human_size(sum(known))} ({len(known)} of {len(ds.files)} sizes recorded)"


def catalogue() -> str:
    """The known data sets with sizes and licences (``--help``)."""
    return "\n".join(
        f"  {ds.name:<25} {len(ds.files):>2} file(s), {size_text(ds)}; {ds.short_licence}"
        for ds in DATASETS.values()
    )


def list_text(to: Path | None = None) -> str:
    out = ["Data sets to download (python -m fusion_tuner.data download NAME):", ""]
    for ds in DATASETS.values():
        checks = sum(f.sha256 is not None or f.git_blob is not None for f in ds.files)
        out += [
            f"{ds.name}: {ds.description}",
            f"  {len(ds.files)} file(s), {size_text(ds)}; checksums for {checks} of "
            f"{len(ds.files)}; {status(ds, to)}",
            f"  licence: {ds.licence}",
            f"  cite: {ds.citation}",
        ]
        if ds.sample:
            out.append(f"  a part is bundled with the package: sample://{ds.sample}")
        out.append("")
    out += [
        f"Bundled samples (no download; in {paths.SAMPLES_DIR}, licences and citations in its "
        "README.md):",
        "",
    ]
    for name in paths.sample_names():
        files = [p for p in (paths.SAMPLES_DIR / name).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        out.append(
            f"  sample://{name:<29} {len(files):>2} file(s), {human_size(size):>8}; "
            f"{SAMPLE_LICENCES.get(name, 'see the README.md')}"
        )
    return "\n".join(out)
