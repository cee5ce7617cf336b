"""Parsing of SLURM command output (recorded on the CI cluster, or written in its format)."""

from __future__ import annotations

import pytest

from fusion_tuner.slurm.cluster import node_from_record
from fusion_tuner.slurm.parse import (
    Gres,
    expand_job_ids,
    format_duration,
    node_usable,
    parse_config,
    parse_duration_min,
    parse_gres,
    parse_mem_mb,
    parse_records,
    parse_table,
    parse_tres,
)
from fusion_tuner.slurm.states import compress_ids
from tests.unit.slurm_fakes import ASSETS


def test_node_record_of_the_ci_cluster() -> None:
    (rec,) = parse_records((ASSETS / "ci_node.txt").read_text())
    assert rec["OS"] == "Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0"  # a value with spaces
    assert rec["AllocTRES"] == "" and rec["CfgTRES"] == "cpu=2,mem=24105M,billing=2"
    node = node_from_record(rec)
    assert (node.name, node.cpus, node.memory_mb, node.gres, node.state, node.partitions) == (
        "vm",
        2,
        24105.0,
        [],
        "IDLE",
        ["debug"],
    )


def test_node_records_with_gres_features_and_mem_spec() -> None:
    nodes = {
        r["NodeName"]: node_from_record(r)
        for r in parse_records((ASSETS / "gpu_node.txt").read_text())
    }
    assert nodes["g01"].gres == [Gres("gpu", "a100", 4)] and nodes["g01"].features == {"a100", "ib"}
    assert nodes["g03"].memory_mb == 380000 - 8000  # MemSpecLimit is not for jobs
    assert nodes["g02"].state == "IDLE+DRAIN" and nodes["c01"].partitions == ["cpu", "short"]
    assert nodes["g01"].gpus() == 4 and nodes["g01"].gpus("v100") == 0


def test_config_and_tables() -> None:
    cfg = parse_config((ASSETS / "ci_config.txt").read_text())
    assert cfg["AccountingStorageEnforce"] == "none" and cfg["DefMemPerCPU"] == "1024"
    rows = parse_table(
        "7_2|PENDING|JobArrayTaskLimit|\n7_0|RUNNING|None|vm\n", ("i", "s", "r", "n")
    )
    assert rows == [
        {"i": "7_2", "s": "PENDING", "r": "JobArrayTaskLimit", "n": ""},
        {"i": "7_0", "s": "RUNNING", "r": "None", "n": "vm"},
    ]


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("UNLIMITED", None),
        ("INFINITE", None),
        ("NONE", None),
        ("30", 30),
        ("30:30", 30.5),
        ("02:00:00", 120),
        ("1-00:00:00", 1440),
        ("2-12", 3600),
        ("1-02:30", 1590),
        ("7-00:00:00", 10080),
    ],
)
def test_durations(text: str, minutes: float | None) -> None:
    assert parse_duration_min(text) == minutes


def test_format_duration() -> None:
    assert format_duration(2880) == "2-00:00:00" and format_duration(90.5) == "01:30:30"


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("24105M", 24105),
        ("2G", 2048),
        ("64GB", 65536),
        ("1024", 1024),
        ("1T", 1048576),
        ("512K", 0.5),
        ("UNLIMITED", None),
        ("0", None),
    ],
)
def test_memory(text: str, mb: float | None) -> None:
    assert parse_mem_mb(text) == mb


def test_bad_memory_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a SLURM memory size: '4 bananas'"):
        parse_mem_mb("4 bananas")


def test_gres_and_tres() -> None:
    assert parse_gres("gpu:a100:4(S:0-1),gpu:2,shard:8") == [
        Gres("gpu", "a100", 4),
        Gres("gpu", None, 2),
        Gres("shard", None, 8),
    ]
    assert parse_gres("(null)") == [] and parse_gres("gres/gpu:1") == [Gres("gpu", None, 1)]
    assert parse_tres("cpu=1,mem=2G,gres/gpu=2") == {"cpu": "1", "mem": "2G", "gres/gpu": "2"}
    assert parse_tres("") == {}


def test_job_ids() -> None:
    # an array cancelled while pending is one sacct line: "3_[0-1%2]|CANCELLED by 0|..."
    assert expand_job_ids("3_[0-1%2]") == ["3_0", "3_1"]
    assert expand_job_ids("8_[0-2,5]") == ["8_0", "8_1", "8_2", "8_5"]
    assert expand_job_ids("12") == ["12"] and expand_job_ids("12_3") == ["12_3"]
    assert compress_ids(["8_0", "8_1", "8_2", "8_5"]) == "8_[0-2,5]"
    assert compress_ids(["8_3"]) == "8_3" and compress_ids(["9", "8_0", "8_1"]) == "9 8_[0-1]"


@pytest.mark.parametrize(
    ("state", "usable"),
    [
        ("IDLE", True),
        ("MIXED", True),
        ("ALLOCATED", True),
        ("IDLE+DRAIN", False),
        ("MIXED+DRAIN", False),
        ("DOWN*", False),
        ("IDLE*", False),
        ("DOWN", False),
        ("IDLE+POWERED_DOWN", True),
        ("RESERVED", True),
    ],
)
def test_node_usable(state: str, usable: bool) -> None:
    assert node_usable(state) is usable
