"""Hostile and foreign checkpoints: decompression and shared-reference bombs are refused
before they cost memory or time; tampered or foreign ones give ``error: ...`` and exit 2 in
predict, export and analyze (issue 26, items 6 and 10)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from fusion_tuner.checkpoint import load_checkpoint
from fusion_tuner.errors import CheckpointError
from tests.helpers.data import NACL_POSCAR
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration


def reference_bomb(path: Path, levels: int = 60) -> Path:
    """A checkpoint whose config holds ``x = [x, x]`` ``levels`` times: tiny on disk,
    2**levels values."""
    x: list = [0]
    for _ in range(levels):
        x = [x, x]
    torch.save({"model_state": {}, "config": {"experiment_name": "b", "bomb": x}}, path)
    assert path.stat().st_size < 100_000
    return path


def deflated_checkpoint(path: Path, size: int = 64 << 20) -> Path:
    """A torch.save archive whose storage record is rewritten as a DEFLATED ``size``-byte run
    of zeros (a few hundred KB on disk); the other members stay stored."""
    good = path.with_suffix(".good")
    torch.save({"model_state": {"w": torch.zeros(4)}, "config": {}}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("data/0"):
                dst.writestr(info.filename, src.read(info))
                continue
            member = zipfile.ZipInfo(info.filename)
            member.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(member, "w", force_zip64=True) as fh:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    fh.write(chunk)
    good.unlink()
    assert path.stat().st_size < size // 50
    return path


@pytest.mark.timeout(20)
def test_a_shared_reference_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = reference_bomb(tmp_path / "bomb.pt")
    with pytest.raises(CheckpointError, match="nested more than 32 levels deep") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    wide = reference_bomb(tmp_path / "wide.pt", levels=24)  # shallow enough, 2**24 values
    with pytest.raises(CheckpointError, match="more than 100000 values"):
        load_checkpoint(wide)


@pytest.mark.timeout(20)
def test_a_compressed_member_is_refused_before_loading(tmp_path: Path, monkeypatch) -> None:
    path = deflated_checkpoint(tmp_path / "zipbomb.pt")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was reached"))
    with pytest.raises(CheckpointError, match="is compressed") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "67108864 bytes" in str(err.value)


def test_a_stored_member_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "liar.pt"
    torch.save({"model_state": {"w": torch.zeros(4)}, "config": {}}, path)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        name = next(i.filename for i in zf.infolist() if i.filename.endswith("data/0")).encode()
    # the central directory's record of data/0 (sizes at offsets 20 and 24) claims ~4 GiB
    at = raw.find(b"PK\x01\x02" + bytes(raw[raw.find(b"PK\x01\x02") + 4 :][:0]))
    while raw[at + 46 : at + 46 + len(name)] != name:
        at = raw.find(b"PK\x01\x02", at + 4)
        assert at > 0
    raw[at + 20 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little") * 2
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"more than the \d+-byte file can hold"):
        load_checkpoint(path)


# ------------------------------------------------------------------ through the commands
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny completed graph-only run."""
    run = tmp_path_factory.mktemp("ckpt_faults") / "run"
    train_run(run, "text=none")
    return run


def tampered(trained: Path, where: Path, change) -> Path:
    """A copy of the run whose best_model.pt went through ``change(checkpoint_dict)``."""
    shutil.copytree(trained, where)
    ckpt = torch.load(where / "best_model.pt", weights_only=True)
    change(ckpt)
    torch.save(ckpt, where / "best_model.pt")
    return where


def _extra_key(c: dict) -> None:
    c["config"]["from_a_future_version"] = 1


def _config_string(c: dict) -> None:
    c["config"] = "experiment_name: x"


def _no_cutoff(c: dict) -> None:
    del c["data_info"]["cutoff"]


def _other_architecture(c: dict) -> None:
    c["config"]["arch"]["hidden_features"] = 64


def _bomb(c: dict) -> None:
    x: list = [0]
    for _ in range(60):
        x = [x, x]
    c["config"]["bomb"] = x


TAMPERINGS = {
    "extra config key": (_extra_key, "from_a_future_version"),
    "config as a string": (_config_string, "config is a str"),
    "data_info without cutoff": (_no_cutoff, "no cutoff in its data_info"),
    "architecture mismatch": (_other_architecture, "weights do not fit"),
    "shared-reference bomb": (_bomb, "far beyond any fusion_tuner config"),
}


CONFIG_TAMPERINGS = ("extra config key", "config as a string", "shared-reference bomb")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(TAMPERINGS))
def test_tampered_checkpoints_give_an_error_and_exit_2(
    kind: str, trained: Path, tmp_path: Path, capsys
) -> None:
    from fusion_tuner.cli.export import main as export_main
    from fusion_tuner.cli.predict import main as predict_main

    change, expected = TAMPERINGS[kind]
    run = tampered(trained, tmp_path / "run", change)
    structures = tmp_path / "POSCAR-NaCl.vasp"
    structures.write_text(NACL_POSCAR)
    capsys.readouterr()
    code = predict_main(
        ["--runs", str(run), "--structures", str(structures), "--out", str(tmp_path / "p.csv")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert str(run / "best_model.pt") in err
    out = tmp_path / "x"
    code = export_main(["leaderboard", str(run), "--benchmark", "dft_3d_x", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    if kind in CONFIG_TAMPERINGS:  # export reads the config, never the weights
        assert expected in err and str(run / "best_model.pt") in err
    from fusion_tuner.cli.analyze import main as analyze_main

    code = analyze_main(
        ["cka", "--runs", str(trained), str(run), "--device", "cpu", "--out", str(tmp_path / "a")]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
