"""The SLURM preflight on recorded clusters: each refusal names the hydra.launcher field and the
largest value allowed; runs that fit pass; down/drained-only fits are warnings."""

from __future__ import annotations

import pytest

from fusion_tuner.slurm.cluster import gather
from fusion_tuner.slurm.preflight import Findings, Request, check, format_refusal
from tests.unit.slurm_fakes import FakeSlurm, cluster, enforcing

# conf/hydra/launcher/slurm.yaml and slurm_cpu.yaml
GPU_DEFAULTS = {
    "gpus_per_task": 1,
    "cpus_per_task": 8,
    "mem_gb": 64,
    "timeout_min": 1440,
    "nodes": 1,
    "tasks_per_node": 1,
}
CPU_DEFAULTS = GPU_DEFAULTS | {
    "gpus_per_task": None,
    "cpus_per_task": 2,
    "mem_gb": 8,
    "timeout_min": 720,
}


def run_check(prefix: str = "ci", config: str | None = None, **fields: object) -> Findings:
    return check(Request.from_launcher(CPU_DEFAULTS | fields), cluster(prefix, config))


def test_gpu_defaults_on_the_ci_node_name_every_field_and_its_maximum() -> None:
    f = check(Request.from_launcher(GPU_DEFAULTS), cluster("ci"))
    assert f.partition == "debug"  # the default partition
    assert f.errors == [
        "hydra.launcher.cpus_per_task=8: asks for 8 CPUs per run, but the largest node of "
        "partition 'debug' (vm) has 2 CPUs. Set hydra.launcher.cpus_per_task=2 or less.",
        "hydra.launcher.mem_gb=64: asks for 65536 MB (64.0 GB) per run, but the largest node of "
        "partition 'debug' (vm) has 24105 MB (23.5 GB). Set hydra.launcher.mem_gb=23 or less.",
        "hydra.launcher.gpus_per_task=1: asks for 1 GPU per run, but no node of partition 'debug' "
        "has a GPU. Set hydra.launcher.gpus_per_task=null (or use hydra/launcher=slurm_cpu), or "
        "choose a partition with GPUs.",
    ]
    text = format_refusal(f)
    assert text.startswith("SLURM preflight: these runs can never start, so nothing was submitted")
    assert "hydra.launcher.preflight=false" in text


def test_cpu_preset_and_tiny_runs_fit_the_ci_node() -> None:
    assert run_check().errors == []
    assert run_check(cpus_per_task=1, mem_gb=1, timeout_min=20).errors == []
    assert run_check(cpus_per_task=2, mem_gb=23).errors == []  # exactly the maximum


def test_unknown_partition_lists_the_partitions() -> None:
    (err,) = run_check(partition="gpu").errors
    assert (
        err == "hydra.launcher.partition=gpu: no such partition on this cluster; partitions: debug."
    )


def test_tasks_per_node_multiply_the_cpus() -> None:
    (err,) = run_check(cpus_per_task=1, tasks_per_node=3).errors
    assert "asks for 3 CPUs per run (1 per task x 3 tasks)" in err
    assert err.endswith("Set hydra.launcher.tasks_per_node=2 or less.")  # 2 CPUs, 1 per task


def test_qos_limits_warn_when_not_enforced_and_refuse_when_enforced() -> None:
    f = run_check(qos="small", cpus_per_task=2, mem_gb=1, timeout_min=20)
    assert f.errors == []
    per_user = [w for w in f.warnings if "per user" in w]
    assert per_user == [
        "QOS 'small' (hydra.launcher.qos) allows 1 CPUs per user, and one run asks for 2: it can "
        "never start under this QOS. Lower the request or choose another hydra.launcher.qos "
        "(SLURM does not enforce QOS limits on this cluster, so it may still run)."
    ]
    assert any("above MaxWall 00:10:00 of QOS 'small'" in w for w in f.warnings)
    f = run_check(
        "ci",
        enforcing("ci", "associations,limits,qos"),
        qos="small",
        cpus_per_task=2,
        mem_gb=1,
        timeout_min=20,
    )
    assert [e for e in f.errors if "per user" in e] and any("MaxWall" in e for e in f.errors)
    assert f.warnings == []


def test_unknown_account_and_qos() -> None:
    f = run_check(account="nope", qos="nope")
    assert f.errors == []  # accounting is not enforced on the CI cluster: SLURM runs them anyway
    assert (
        "hydra.launcher.account=nope: user root has no association with this account (their "
        "accounts: root)." in f.warnings
    )
    assert "hydra.launcher.qos=nope: no such QOS; QOS: normal, small." in f.warnings
    f = run_check("ci", enforcing("ci", "associations"), account="nope", qos="nope")
    assert len(f.errors) == 2


GPU = {"partition": "gpu", "cpus_per_task": 8, "mem_gb": 64, "timeout_min": 1440}


def test_gpu_cluster_fits_and_gpu_limits() -> None:
    assert run_check("gpu", gres="gpu:a100:1", **GPU).errors == []
    assert run_check("gpu", gpus_per_task=2, **GPU).errors == []
    (err,) = run_check("gpu", gpus_per_node=8, **GPU).errors
    assert err == (
        "hydra.launcher.gpus_per_node=8: asks for 8 GPUs per run, but the largest node of "
        "partition 'gpu' (g01) has 4. Lower it to 4."
    )
    (err,) = run_check("gpu", gres="gpu:h100:1", **GPU).errors
    assert "has a 'h100' GPU (GPU types there: a100, v100)" in err and err.startswith(
        "hydra.launcher.gres=gpu:h100:1"
    )


def test_fits_only_on_down_or_drained_nodes_is_a_warning() -> None:
    f = run_check("gpu", gpus_per_task=1, constraint="v100", **GPU)  # only g03 (DOWN*)
    assert f.errors == []
    assert f.warnings == [
        "every node of partition 'gpu' that can hold a run is down or drained (g03 DOWN*): the "
        "runs will wait until an administrator returns one to service."
    ]
    (err,) = run_check("gpu", constraint="h100", **GPU).errors
    assert err.startswith("hydra.launcher.constraint=h100: no node of partition 'gpu' has these")


def test_time_nodes_and_partition_limits() -> None:
    (err,) = run_check("gpu", **(GPU | {"timeout_min": 4000})).errors
    assert err == (
        "hydra.launcher.timeout_min=4000: above the time limit of partition 'gpu' (MaxTime "
        "2-00:00:00 = 2880 min). Set hydra.launcher.timeout_min=2880 or less."
    )
    (err,) = run_check("gpu", nodes=3, **GPU).errors
    assert err.startswith("hydra.launcher.nodes=3: partition 'gpu' can give a run at most")
    (err,) = run_check("gpu", partition="cpu", cpus_per_task=40).errors
    assert "partition 'cpu' allows 32 CPUs per node (MaxCPUsPerNode)" in err
    (err,) = run_check("gpu", partition="cpu", cpus_per_task=8, mem_gb=200).errors
    assert "partition 'cpu' allows (MaxMemPerCPU x 8 CPUs) 32000 MB" in err
    assert err.endswith("Set hydra.launcher.mem_gb=31 or less.")
    (err,) = run_check("gpu", partition="old").errors
    assert err.startswith("hydra.launcher.partition=old: the partition is DRAIN")
    assert run_check("gpu").partition == "cpu"  # the default partition


def test_no_single_node_holds_cpus_and_memory_together() -> None:
    # c01: 48 CPUs, 192000 MB; c02: 32 CPUs, 256000 MB; partition 'short' also has QOS 'short'
    errs = run_check("gpu", partition="short", cpus_per_task=40, mem_gb=200, timeout_min=60).errors
    assert errs[0].startswith("no single node of partition 'short' offers 40 CPUs, 204800 MB")
    assert "c01: 48 CPUs, 192000 MB, 0 GPUs; c02: 32 CPUs, 256000 MB, 0 GPUs" in errs[0]
    assert errs[1].startswith("QOS 'short' (the QOS of partition 'short') allows 16 CPUs per job")


def test_partition_access_and_partition_qos() -> None:
    (err,) = run_check("gpu", partition="short", account="bio", timeout_min=60).errors[:1]
    assert (
        err == "hydra.launcher.account=bio: partition 'short' allows only the accounts chem, phys."
    )
    f = run_check("gpu", partition="short", account="chem", timeout_min=60, cpus_per_task=20)
    assert f.errors == [
        "QOS 'short' (the QOS of partition 'short') allows 16 CPUs per job, and one run asks for "
        "20: it can never start under this QOS. Lower the request or choose another "
        "hydra.launcher.qos."
    ]


@pytest.mark.parametrize(("field", "value"), [("mem_per_cpu", "20G"), ("mem_per_gpu", "200G")])
def test_memory_per_cpu_or_gpu(field: str, value: str) -> None:
    # 32 CPUs x 20 GB or 4 GPUs x 200 GB: above the 515000 MB of the largest node
    fields = {
        "partition": "gpu",
        "gpus_per_task": 4,
        "cpus_per_task": 32,
        "timeout_min": 60,
        "mem_gb": None,
        field: value,
    }
    (err,) = run_check("gpu", **fields).errors
    assert err.startswith(f"hydra.launcher.{field}={value}: asks for")


def test_a_cluster_without_accounting_is_not_asked_about_accounts() -> None:
    no_dbd = "AccountingStorageType   = accounting_storage/none\nDefMemPerCPU = 1024\n"
    fake = FakeSlurm("ci", config=no_dbd)
    info = gather(need_accounting=True, runner=fake, user="root")
    assert info.qos is None and info.notes == [] and fake.count("sacctmgr") == 0
    f = check(Request.from_launcher(CPU_DEFAULTS | {"qos": "small"}), info)
    assert f.errors == [] and f.warnings == []  # nothing to check the QOS against
