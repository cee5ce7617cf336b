"""Pending reasons, the array monitor (progress, cancellation), and the live state in the summary,
against a scripted SLURM (squeue/sacct lines in the format recorded on the CI cluster)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fusion_tuner.slurm.cluster import SchedulerUnavailable
from fusion_tuner.slurm.monitor import ArrayMonitor, NeverStarts, RunJob
from fusion_tuner.slurm.preflight import Request
from fusion_tuner.slurm.reasons import explain
from fusion_tuner.slurm.record import annotate_runs, is_detached, write_record
from tests.unit.slurm_fakes import FakeSlurm, cluster

CI_REQUEST = Request.from_launcher({"cpus_per_task": 4, "mem_gb": 1, "timeout_min": 20})


def test_partition_config_names_the_field_and_the_maximum() -> None:
    b = explain("PartitionConfig", CI_REQUEST, lambda: cluster("ci"))
    assert b.never
    assert b.fix == (
        "hydra.launcher.cpus_per_task=4: asks for 4 CPUs per run, but the largest node of "
        "partition 'debug' (vm) has 2 CPUs. Set hydra.launcher.cpus_per_task=2 or less."
    )
    # without cluster information the fix still names the fields to change
    assert "hydra.launcher.cpus_per_task" in explain("PartitionConfig").fix


@pytest.mark.parametrize(
    ("reason", "never", "words"),
    [
        ("Resources", False, "waiting for CPUs, memory or GPUs that other jobs hold"),
        ("Priority", False, "waiting for jobs of higher priority"),
        ("JobArrayTaskLimit", False, "hydra.launcher.array_parallelism"),
        ("PartitionTimeLimit", True, "above the partition's MaxTime"),
        ("QOSMaxCpuPerJobLimit", True, "per-job limit of its QOS"),
        ("QOSMaxWallDurationPerJobLimit", True, "per-job limit of its QOS"),
        ("QOSMaxMemoryPerJob", True, "per-job limit of its QOS"),
        ("QOSMinCpuNotSatisfied", True, "per-job limit"),
        ("AssocMaxCpuPerJobLimit", True, "account (association)"),
        ("QOSGrpCpuLimit", False, "the group's running jobs"),
        ("AssocMaxJobsLimit", False, "account (association) limit"),
        ("InvalidQOS", True, "QOS does not exist"),
        ("BadConstraints", True, "features"),
        ("SomethingNew", False, "pending (SomethingNew)"),
    ],
)
def test_reasons_in_plain_words(reason: str, never: bool, words: str) -> None:
    b = explain(reason)
    assert b.never is never and words in b.words


def test_per_user_limit_is_never_only_when_nothing_of_yours_runs() -> None:
    assert not explain("QOSMaxCpuPerUserLimit", user_has_running=lambda: True).never
    b = explain("QOSMaxCpuPerUserLimit", CI_REQUEST, user_has_running=lambda: False)
    assert b.never and "hydra.launcher.cpus_per_task" in b.fix
    assert not explain("QOSMaxCpuPerUserLimit", user_has_running=lambda: None).never  # unknown


def test_req_node_not_avail_is_never_when_every_able_node_is_down() -> None:
    v100 = Request.from_launcher({"partition": "gpu", "gres": "gpu:v100:1", "cpus_per_task": 8})
    b = explain("ReqNodeNotAvail, UnavailableNodes:g03", v100, lambda: cluster("gpu"))
    assert b.never and "(g03 DOWN*)" in b.words and "hydra.launcher.partition" in b.fix
    a100 = Request.from_launcher({"partition": "gpu", "gres": "gpu:a100:1", "cpus_per_task": 8})
    b = explain("ReqNodeNotAvail, UnavailableNodes:g02", a100, lambda: cluster("gpu"))
    assert not b.never  # g01 (MIXED) can hold it


@dataclass
class ScriptedArray:
    """squeue/sacct of one array of two runs, changing at each poll (the last step repeats)."""

    squeue: list[str]
    sacct: list[str] = field(default_factory=lambda: [""])
    polls: int = 0
    cancelled: bool = False

    def fake(self) -> FakeSlurm:
        def squeue(argv: list[str]) -> str:
            if "-t" in argv:  # the user's running jobs
                return ""
            if argv[-1] == "%i":  # after scancel: what is left
                return ""
            self.polls += 1
            return self.squeue[min(self.polls, len(self.squeue)) - 1]

        def sacct(argv: list[str]) -> str:
            return self.sacct[min(self.polls, len(self.sacct) - 1)]

        def scancel(argv: list[str]) -> str:
            self.cancelled = True
            return ""

        return FakeSlurm("ci", {("squeue",): squeue, ("sacct",): sacct, ("scancel",): scancel})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


JOBS = [
    RunJob("8_0", "experiment=baseline", "sw/.submitit/8_0/8_0_0_log.out"),
    RunJob("8_1", "experiment=e06_lower_lr", "sw/.submitit/8_1/8_1_0_log.out"),
]


def monitor(script: ScriptedArray, **kw: object) -> tuple[ArrayMonitor, FakeSlurm]:
    fake, clock = script.fake(), Clock()
    m = ArrayMonitor("8", JOBS, CI_REQUEST, runner=fake, clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]
    return m, fake


PC = "8_0|PENDING|PartitionConfig|\n8_1|PENDING|PartitionConfig|\n"  # recorded


def test_never_startable_array_is_cancelled_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    script = ScriptedArray([PC])
    m, fake = monitor(script, progress_interval_s=5)
    caplog.set_level(logging.INFO)
    with pytest.raises(NeverStarts) as exc:
        m.wait(done=lambda: False)
    assert script.cancelled and fake.count("scancel", "8") == 1
    assert exc.value.reason == "PartitionConfig"
    msg = str(exc.value)
    assert msg.startswith("SLURM job 8: can never start: it asks for more than any node")
    assert "Set hydra.launcher.cpus_per_task=2 or less." in msg
    assert "Cancelled its 2 run(s) (scancel 8); none is left in the queue." in msg
    assert "hydra.launcher.keep_waiting=true" in msg
    assert script.polls == 2  # two polls in a row before cancelling
    assert "2 pending (PartitionConfig: 2), 0 running, 0 completed, 0 failed" in caplog.text


def test_a_never_reason_on_one_poll_only_does_not_cancel() -> None:
    ok = "8_0|COMPLETED|None|vm\n8_1|COMPLETED|None|vm\n"
    script = ScriptedArray([PC, "8_0|PENDING|Resources|\n8_1|PENDING|Resources|\n", ok])
    m, _ = monitor(script, progress_interval_s=5)
    snap = m.wait(done=lambda: False)
    assert not script.cancelled and snap is not None and snap.ended


def test_keep_waiting_reports_and_waits(caplog: pytest.LogCaptureFixture) -> None:
    done = "8_0|COMPLETED|None|vm\n8_1|COMPLETED|None|vm\n"
    script = ScriptedArray([PC, PC, PC, PC, done])
    m, _ = monitor(script, progress_interval_s=1, keep_waiting=True)
    caplog.set_level(logging.INFO)
    m.wait(done=lambda: False)
    assert not script.cancelled
    assert "(hydra.launcher.keep_waiting=true: waiting)" in caplog.text
    assert "SLURM job 8: every run ended after" in caplog.text


def test_progress_lines_count_states_and_explain_reasons_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = ScriptedArray(
        [
            "",  # submitted, not yet visible
            "8_1|PENDING|JobArrayTaskLimit|\n8_0|RUNNING|None|vm\n",
            "8_1|PENDING|JobArrayTaskLimit|\n8_0|RUNNING|None|vm\n",
            "8_1|RUNNING|None|vm\n",
            "8_1|RUNNING|None|vm\n",
            "",
        ],
        sacct=[
            "",
            "",
            "",
            "",
            "8_0|COMPLETED|None|vm\n",
            "8_0|COMPLETED|None|vm\n8_1|FAILED|None|vm\n",
        ],
    )
    m, _ = monitor(script, progress_interval_s=1, poll_s=1)
    caplog.set_level(logging.INFO)
    m.wait(done=lambda: False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("SLURM job 8, 00:00: 2 pending (unknown: 2), 0 running")
    assert lines[1] == (
        "SLURM job 8, 00:01: 1 pending (JobArrayTaskLimit: 1), 1 running, 0 completed, 0 failed "
        "| pending 8_1 | running 8_0\n  JobArrayTaskLimit: waiting for a slot: "
        "hydra.launcher.array_parallelism limits the runs at once"
    )
    assert "JobArrayTaskLimit: waiting" not in lines[2]  # explained once
    assert "0 pending, 1 running, 1 completed, 0 failed | running 8_1 | completed 8_0" in lines[4]
    assert lines[-1] == (
        "SLURM job 8: every run ended after 00:05: 0 pending, 0 running, 1 completed, "
        "1 failed (FAILED: 1)"
    )


def test_unreachable_scheduler_is_said_and_submitit_decides_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down(argv: list[str]) -> str:
        raise SchedulerUnavailable("squeue not found on PATH")

    clock = Clock()
    fake = FakeSlurm("ci", {("squeue",): down, ("sacct",): down})
    m = ArrayMonitor("8", JOBS, runner=fake, clock=clock, sleep=clock.sleep, progress_interval_s=1)
    caplog.set_level(logging.INFO)
    assert m.wait(done=lambda: clock.t >= 3) is None
    assert "SLURM job 8, 00:00: state unavailable (squeue not found on PATH" in caplog.text


def test_the_bar_goes_to_a_terminal_stream() -> None:
    import io

    stream = io.StringIO()
    script = ScriptedArray(
        ["8_0|RUNNING|None|vm\n8_1|PENDING|Priority|\n", ""],
        sacct=["", "8_0|COMPLETED|None|vm\n8_1|COMPLETED|None|vm\n"],
    )
    m, _ = monitor(script, progress_interval_s=60, poll_s=1, stream=stream)
    m.wait(done=lambda: False)
    assert (
        "\r\x1b[K[" in stream.getvalue()
        and "0/2 ended | 1 running | 1 pending" in stream.getvalue()
    )


@dataclass
class FakeRun:
    """What annotate_runs reads and sets of fusion_tuner.rundir.Run."""

    file_status: str
    overrides: list[str]
    live_status: str | None = None

    @property
    def status(self) -> str:
        return self.live_status if self.live_status is not None else self.file_status


def record(tmp_path: Path, **extra: object) -> Path:
    jobs = [
        {
            "job_id": f"8_{i}",
            "overrides": [f"experiment={e}", "budget=quick"],
            "log": f"{tmp_path}/.submitit/8_{i}/8_{i}_0_log.out",
        }
        for i, e in enumerate(["baseline", "e06_lower_lr", "e07"])
    ]
    write_record(
        tmp_path, {"array_job_id": "8", "detached": True, "cancelled": None, "jobs": jobs} | extra
    )
    return tmp_path


def test_summary_gets_the_live_state_of_unfinished_runs(tmp_path: Path) -> None:
    sweep = record(tmp_path)
    assert is_detached(sweep)
    runs = [
        FakeRun("missing", ["budget=quick", "experiment=baseline"]),
        FakeRun("running", ["experiment=e06_lower_lr", "budget=quick"]),
        FakeRun("completed", ["experiment=e07", "budget=quick"]),
    ]
    fake = FakeSlurm(
        "ci",
        {
            ("squeue",): lambda a: "8_0|PENDING|Resources|\n8_1|RUNNING|None|vm\n",
            ("sacct",): lambda a: "8_2|COMPLETED|None|vm\n",
        },
    )
    note = annotate_runs(sweep, runs, runner=fake)
    assert [r.status for r in runs] == [
        "pending (Resources, job 8_0)",
        "running (job 8_1)",
        "completed",
    ]
    assert note.startswith("SLURM state of unfinished runs as of ")
    assert f"(job array 8, squeue/sacct); logs in {tmp_path}/.submitit." in note
    assert note.endswith(
        "2 run(s) are still pending or running: summarise again once they end "
        "(rerunning the sweep now would start them twice)."
    )


def test_summary_says_when_slurm_does_not_answer(tmp_path: Path) -> None:
    def down(argv: list[str]) -> str:
        raise SchedulerUnavailable("sacct not found on PATH")

    runs = [FakeRun("missing", ["experiment=baseline", "budget=quick"])]
    note = annotate_runs(
        record(tmp_path), runs, runner=FakeSlurm("ci", {("squeue",): down, ("sacct",): down})
    )
    assert runs[0].status == "missing"
    assert note == (
        "SLURM did not answer (sacct not found on PATH; sacct not found on PATH): the status of 1 "
        "unfinished run(s) is from the files only (job array 8)."
    )


def test_summary_of_a_cancelled_sweep_and_of_a_non_slurm_sweep(tmp_path: Path) -> None:
    sweep = record(tmp_path / "a", cancelled={"reason": "PartitionConfig", "message": "..."})
    runs = [FakeRun("missing", ["experiment=baseline", "budget=quick"])]
    fake = FakeSlurm("ci", {("squeue",): lambda a: "", ("sacct",): lambda a: ""})  # sacct lags
    annotate_runs(sweep, runs, runner=fake)
    assert runs[0].status == "cancelled by the sweep (job 8_0: PartitionConfig)"
    (tmp_path / "b").mkdir()
    assert annotate_runs(tmp_path / "b", runs, runner=fake) == "" and not is_detached(
        tmp_path / "b"
    )


def test_summary_of_a_sweep_submitted_in_two_batches(tmp_path: Path) -> None:
    jobs = [
        {"job_id": "8_0", "overrides": ["experiment=baseline"], "log": "a/8_0/x.out"},
        {"job_id": "9_0", "overrides": ["experiment=e07"], "log": "a/9_0/x.out"},
    ]
    write_record(tmp_path, {"array_job_id": "9", "cancelled": None, "jobs": jobs})
    runs = [FakeRun("missing", ["experiment=baseline"]), FakeRun("missing", ["experiment=e07"])]
    fake = FakeSlurm(
        "ci",
        {
            ("squeue",): lambda a: {"8": "8_0|RUNNING|None|vm\n", "9": "9_0|PENDING|Priority|\n"}[
                a[4]
            ],
            ("sacct",): lambda a: "",
        },
    )
    note = annotate_runs(tmp_path, runs, runner=fake)
    assert [r.status for r in runs] == ["running (job 8_0)", "pending (Priority, job 9_0)"]
    assert "(job array 8 9, squeue/sacct)" in note
