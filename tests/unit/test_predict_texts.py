"""Which texts new crystals get: the run's own rule, and the refusals that name the fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fusion_tuner import compose_config
from fusion_tuner.data.records import Crystal
from fusion_tuner.errors import PredictError
from fusion_tuner.inference import predictor
from fusion_tuner.rundir import RunDir


class FakeRun:
    """What the text rules read of a run: its config and its data report."""

    def __init__(self, tmp: Path, overrides: list[str], texts: dict | None) -> None:
        self.name = "r"
        self.config = compose_config(overrides, check=False)
        self.files = RunDir(tmp)
        if texts is not None:
            self.files.write_data_report({"texts": texts})


def crystal(cid: str, text: str | None = None) -> Crystal:
    return Crystal(cid, np.eye(3) * 4, np.zeros((1, 3)), ["Na"], math.nan, text)


def test_who_may_describe_new_crystals(tmp_path: Path) -> None:
    def run(overrides: list[str], texts: dict | None = None) -> FakeRun:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        return FakeRun(folder, overrides, texts)

    described = {"dataset": 0, "file": 0, "describe": 40}
    assert predictor._describes_missing(run(["text.source=describe"]))
    assert predictor._describes_missing(run(["dataset=jarvis"], described))
    assert predictor._describes_missing(run(["dataset=jarvis"]))  # before the record
    assert not predictor._describes_missing(run([], {"dataset": 60, "file": 0, "describe": 0}))
    assert not predictor._describes_missing(run(["dataset=jarvis", "text.source=dataset"]))


def test_refusals_name_the_fix(tmp_path: Path) -> None:
    new = [crystal("POSCAR-x.vasp"), crystal("y", "own text")]
    demo = FakeRun(tmp_path, [], {"dataset": 60, "file": 0, "describe": 0})
    with pytest.raises(PredictError, match="dataset's own texts") as err:
        predictor._check_texts([demo], new, None)
    assert "1 of the 2 new crystals have no text" in str(err.value)
    assert "--descriptions FILE" in str(err.value)
    predictor._check_texts([demo], new, tmp_path / "d.csv")  # with a file: fine
    predictor._check_texts([demo], [new[1]], None)  # every crystal brings its text: fine
    # a run whose file missed some crystals (described) still needs a file for new ones
    mixed = FakeRun(
        tmp_path / "m",
        ["dataset=jarvis", "dataset.descriptions=texts.json"],
        {"dataset": 0, "file": 30, "describe": 2},
    )
    with pytest.raises(PredictError, match=r"dataset\.descriptions=texts\.json"):
        predictor._check_texts([mixed], new, None)
    described = FakeRun(
        tmp_path / "j", ["dataset=jarvis"], {"dataset": 0, "file": 0, "describe": 9}
    )
    predictor._check_texts([described], new, None)  # describe() new crystals, as in training


def test_texts_from_a_file_skip_what_it_misses(tmp_path: Path) -> None:
    desc = tmp_path / "d.csv"
    desc.write_text("id,description\nJVASP-1,text one\n")
    demo = FakeRun(tmp_path / "run", [], {"dataset": 60, "file": 0, "describe": 0})
    texts, skipped = predictor._texts(
        demo, [crystal("POSCAR-JVASP-1.vasp"), crystal("JVASP-2"), crystal("z", "own")], desc
    )
    assert texts == {"POSCAR-JVASP-1.vasp": "text one", "z": "own"}
    assert skipped == [
        ("JVASP-2", f"no description in {desc} (the run's texts came from such a file)")
    ]
    assert json.loads((tmp_path / "run" / "data_report.json").read_text())["texts"]["dataset"] == 60
