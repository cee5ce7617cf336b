"""``python -m fusion_tuner.data``: downloads against a loopback HTTP server (with Range), the
checksums, the registry against the bundled copies, ``list`` and ``download --help``."""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fusion_tuner import paths
from fusion_tuner.cli.datasets import main as data_main
from fusion_tuner.data import download as dl
from fusion_tuner.data.registry import DATASETS, DataSet, RemoteFile

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes: several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()
BLOB = hashlib.sha1(f"blob {len(PAYLOAD)}\0".encode() + PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /file.bin; honours Range; can drop the first transfer half-way or
    ignore Range; records the Range header of every GET."""

    def __init__(self) -> None:
        self.ranges: list[str | None] = []
        self.drop_first = False
        self.ignore_range = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                if self.path != "/file.bin":
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                    )
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drop_first:
                    outer.drop_first = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def quiet(_: str) -> None:
    pass


def test_checksum_ok_writes_the_file_atomically(server: Server, tmp_path: Path) -> None:
    rf = RemoteFile(server.url, "file.bin", len(PAYLOAD), SHA)
    check = dl.fetch_file(rf, tmp_path / "out", say=quiet)
    assert check.ok and check.verified and check.sha256 == SHA
    assert (tmp_path / "out" / "file.bin").read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin"]  # no .part
    assert server.ranges == [None]


def test_git_blob_id_verifies_a_file_without_sha256(server: Server, tmp_path: Path) -> None:
    check = dl.fetch_file(RemoteFile(server.url, "f.bin", git_blob=BLOB), tmp_path, say=quiet)
    assert check.verified and f"git blob id {BLOB} matches" in check.detail
    with pytest.raises(dl.DownloadError, match=f"git blob id {BLOB}, expected 0+"):
        dl.fetch_file(RemoteFile(server.url, "g.bin", git_blob="0" * 40), tmp_path, say=quiet)
    assert not (tmp_path / "g.bin").exists() and not (tmp_path / "g.bin.part").exists()


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    rf = RemoteFile(server.url, "file.bin", None, "ab" * 32)
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch_file(rf, tmp_path, say=quiet)
    msg = str(err.value)
    assert server.url in msg and "checksum mismatch" in msg
    assert f"SHA-256 {SHA}, expected {'ab' * 32}" in msg
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_size_mismatch_is_a_checksum_failure(server: Server, tmp_path: Path) -> None:
    rf = RemoteFile(server.url, "file.bin", len(PAYLOAD) + 1, SHA)
    with pytest.raises(dl.DownloadError, match=f"size {len(PAYLOAD)} bytes, expected"):
        dl.fetch_file(rf, tmp_path, say=quiet)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_a_range_request(server: Server, tmp_path: Path) -> None:
    server.drop_first = True
    said: list[str] = []
    check = dl.fetch_file(RemoteFile(server.url, "file.bin", None, SHA), tmp_path, say=said.append)
    assert check.ok
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    half = len(PAYLOAD) // 2
    assert server.ranges == [None, f"bytes={half}-"]
    assert any(f"resuming from byte {half}" in s for s in said)


def test_interrupted_without_retries_keeps_the_part_and_the_next_run_resumes(
    server: Server, tmp_path: Path
) -> None:
    server.drop_first = True
    rf = RemoteFile(server.url, "file.bin", len(PAYLOAD), SHA)
    with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
        dl.fetch_file(rf, tmp_path, retries=0, say=quiet)
    part = tmp_path / "file.bin.part"
    assert part.read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]
    assert not (tmp_path / "file.bin").exists()
    dl.fetch_file(rf, tmp_path, retries=0, say=quiet)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD and not part.exists()
    assert server.ranges[-1] == f"bytes={len(PAYLOAD) // 2}-"


def test_a_server_that_ignores_range_restarts_the_file(server: Server, tmp_path: Path) -> None:
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes of another file")
    server.ignore_range = True
    check = dl.fetch_file(RemoteFile(server.url, "file.bin", None, SHA), tmp_path, say=quiet)
    assert check.ok and (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_no_network_names_the_url_and_the_offline_placement(tmp_path: Path) -> None:
    s = Server()
    url = s.url
    s.close()  # nothing listens on that port any more
    rf = RemoteFile(url, "file.bin", None, SHA)
    with pytest.raises(dl.DownloadError) as err:
        dl.fetch_file(rf, tmp_path, say=quiet)
    msg = str(err.value)
    assert f"cannot reach {url}" in msg
    assert f"place it at {tmp_path / 'file.bin'}" in msg
    assert not (tmp_path / "file.bin").exists()


def test_http_error_is_reported(server: Server, tmp_path: Path) -> None:
    rf = RemoteFile(server.url.replace("file.bin", "missing.bin"), "m.bin")
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.fetch_file(rf, tmp_path, say=quiet)


def fake_set(name: str, url: str, sha: str | None) -> DataSet:
    return DataSet(name, "a toy set", "MIT", "nobody", (RemoteFile(url, "file.bin", None, sha),))


def test_main_download_list_and_exit_codes(
    server: Server, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(DATASETS, "toy", fake_set("toy", server.url, SHA))
    monkeypatch.setitem(DATASETS, "toy_unverified", fake_set("toy_unverified", server.url, None))
    monkeypatch.setitem(DATASETS, "toy_bad", fake_set("toy_bad", server.url, "cd" * 32))
    monkeypatch.setenv("FUSION_TUNER_DATA_DIR", str(tmp_path / "data"))

    assert data_main(["download", "toy"]) == 0
    out = capsys.readouterr().out
    assert f"SHA-256 {SHA} matches" in out
    assert (tmp_path / "data" / "toy" / "file.bin").read_bytes() == PAYLOAD
    assert paths.resolve("data://toy/file.bin") == tmp_path / "data" / "toy" / "file.bin"
    assert data_main(["download", "toy"]) == 0  # already there: checked, not fetched again
    assert "present: " in capsys.readouterr().out and len(server.ranges) == 1

    assert data_main(["download", "toy_unverified", "--to", str(tmp_path / "u")]) == 0
    out = capsys.readouterr().out
    assert "NOT VERIFIED" in out and SHA in out
    assert (tmp_path / "u" / "file.bin").is_file()

    assert data_main(["download", "toy_bad", "--to", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and not (tmp_path / "b" / "file.bin").exists()

    assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"present in {tmp_path / 'data' / 'toy'}" in out
    assert "toy_bad: a toy set" in out and "absent" in out.split("toy_bad:")[1].split("\n\n")[0]
    assert "sample://perov5_castelli" in out


def test_download_help_lists_the_sets_with_sizes_and_licences(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        data_main(["download", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in ("perov_5", "mp_20", "carbon_24", "dft_3d", "dft_3d_2021"):
        assert f"  {name} " in out
    assert "jarvis_leaderboard_dft3d  41 file(s), 5.2 MB; NIST JARVIS terms of use" in out
    assert "perov_5                    3 file(s), over 7.3 MB (2 of 3 sizes recorded); MIT" in out
    assert "dft_3d                     1 file(s), size not recorded; NIST" in out


def test_unknown_name_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        data_main(["download", "mp_21"])
    assert done.value.code == 2
    assert "invalid choice: 'mp_21'" in capsys.readouterr().err


def test_registry_checksums_match_the_bundled_copies() -> None:
    """The recorded SHA-256 and git blob ids of the files that are also bundled."""
    perov = {f.name: f for f in DATASETS["perov_5"].files}["val.csv"]
    with zipfile.ZipFile(paths.SAMPLES_DIR / "perov5_castelli" / "perov5_val.csv.zip") as zf:
        data = zf.read("perov5_val.csv")
    assert len(data) == perov.size
    assert hashlib.sha256(data).hexdigest() == perov.sha256
    assert hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest() == perov.git_blob
    board = {f.name: f for f in DATASETS["jarvis_leaderboard_dft3d"].files}
    bundled = sorted((paths.SAMPLES_DIR / "jarvis_leaderboard_dft3d").glob("*.zip"))
    assert len(bundled) == 5
    for path in bundled:
        rf = board[path.name]
        check = dl.check_file(path, rf)
        assert check.ok and check.verified, (path.name, check.detail)
        assert dl.git_blob_id(path) == rf.git_blob


def test_registry_records_no_made_up_values() -> None:
    for ds in DATASETS.values():
        assert ds.licence and ds.citation and ds.files
        for f in ds.files:
            assert f.url.startswith("https://")
            if f.sha256 is not None:
                assert len(f.sha256) == 64 and f.size is not None
            if f.git_blob is not None:
                assert len(f.git_blob) == 40
    # the JARVIS figshare zips: nothing could check them, so nothing is recorded
    assert all(f.sha256 is f.git_blob is f.size is None for f in DATASETS["dft_3d"].files)


def test_jarvis_sets_go_where_dataset_jarvis_reads(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FUSION_TUNER_JARVIS_DIR", str(tmp_path / "jv"))
    assert dl.default_dir(DATASETS["dft_3d_2021"]) == tmp_path / "jv"
    monkeypatch.setenv("FUSION_TUNER_DATA_DIR", str(tmp_path / "d"))
    assert dl.default_dir(DATASETS["mp_20"]) == tmp_path / "d" / "mp_20"


def test_jarvis_download_follows_the_file_jarvis_tools_reads(monkeypatch) -> None:
    """dataset=jarvis reads what the installed jarvis-tools names; a newer jarvis-tools that
    names another figshare file gets that file (unverified), and says so."""
    import jarvis.db.figshare as figshare

    recorded = DATASETS["dft_3d"].files[0]
    monkeypatch.setattr(
        figshare, "get_db_info", lambda: {"dft_3d": [recorded.url, recorded.name[:-4], "", ""]}
    )
    said: list[str] = []
    assert dl._current_files(DATASETS["dft_3d"], said.append) == (recorded,) and not said
    monkeypatch.setattr(
        figshare,
        "get_db_info",
        lambda: {"dft_3d": ["https://ndownloader.figshare.com/files/1", "jdft_3d-1-1-2030.json"]},
    )
    [other] = dl._current_files(DATASETS["dft_3d"], said.append)
    assert other == RemoteFile(
        "https://ndownloader.figshare.com/files/1", "jdft_3d-1-1-2030.json.zip"
    )
    assert "not the recorded jdft_3d-9-24-2025.json.zip" in said[0]


def test_list_shows_partial_and_the_samples_licences(tmp_path: Path) -> None:
    (tmp_path / "val.csv").write_text("x")
    assert dl.status(DATASETS["perov_5"], tmp_path) == f"partial (1 of 3 files) in {tmp_path}"
    text = dl.list_text(tmp_path)
    assert "sample://perov5_castelli" in text and "MIT (CDVAE)" in text
    assert "checksums for 0 of 1" in text  # the JARVIS figshare zips


def test_list_into_a_closed_pipe_exits_quietly() -> None:
    """``list | grep -q NAME`` or ``list | head``: the reader may be gone before the listing is
    written; the command still exits 0 without a traceback."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader has already left
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fusion_tuner.data", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
