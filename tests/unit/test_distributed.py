"""Several ranks: the global batch sampler, launcher environments, config rules (the runs on
two processes are in tests/integration/test_ddp.py)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from fusion_tuner.config import config_hash, validate
from fusion_tuner.errors import ConfigError
from fusion_tuner.launch import Launch, first_host, from_env
from fusion_tuner.training import distributed
from fusion_tuner.training.distributed import Dist, epoch_seed
from fusion_tuner.training.sharding import GlobalBatchSampler, sharded_loader, slice_bounds
from tests.conftest import compose


# ------------------------------------------------------------------------------ the sampler
def test_slices_are_contiguous_and_cover_the_batch() -> None:
    assert [slice_bounds(5, 2, r) for r in range(2)] == [(0, 3), (3, 5)]
    assert [slice_bounds(7, 3, r) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert [slice_bounds(1, 3, r) for r in range(3)] == [(0, 1), (1, 1), (1, 1)]


class Items(torch.utils.data.Dataset):
    """Samples that carry their index, to see which index went where."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Data:
        return Data(x=torch.zeros(1, 1), ident=torch.tensor([i]))


def plain_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = DataLoader(Items(n), batch_size=batch_size, shuffle=True, generator=gen)
    return [b.ident.tolist() for b in loader]


def rank_batches(n: int, batch_size: int, seed: int, world: int, rank: int) -> list[dict]:
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = sharded_loader(Items(n), batch_size, Dist(rank, world, rank), True, gen)
    return [
        {
            "index": b.ident.tolist(),
            "weight": b.shard_weight.tolist(),
            "position": b.shard_position.tolist(),
            "global": b.shard_size.tolist(),
        }
        for b in loader
    ]


@pytest.mark.parametrize(("n", "batch_size", "world"), [(23, 5, 2), (10, 3, 3), (9, 4, 1)])
def test_ranks_split_the_plain_loaders_batches(n: int, batch_size: int, world: int) -> None:
    # the same permutation as a shuffled plain loader with the same generator (which first
    # draws its worker seed from it), cut into the same global batches, sliced in rank order
    expected = plain_batches(n, batch_size, seed=7)
    ranks = [rank_batches(n, batch_size, 7, world, r) for r in range(world)]
    assert all(len(r) == len(expected) for r in ranks)
    for step, batch in enumerate(expected):
        real = []
        for rank in range(world):
            got = ranks[rank][step]
            assert got["global"] == [len(batch)] * len(got["index"])
            assert got["index"] == got["position"]
            real += [i for i, w in zip(got["index"], got["weight"], strict=True) if w == 1.0]
        assert real == batch


def test_an_empty_slice_gets_a_ghost_of_weight_zero() -> None:
    # 11 crystals in batches of 5 over 2 ranks: 3/2, 3/2, then 1 crystal -> rank 1 gets a ghost
    r0, r1 = (rank_batches(11, 5, 3, 2, r) for r in range(2))
    assert [len(b["index"]) for b in r0] == [3, 3, 1]
    assert [len(b["index"]) for b in r1] == [2, 2, 1]
    assert r0[2]["weight"] == [1.0] and r1[2]["weight"] == [0.0]
    assert r1[2]["index"] == r0[2]["index"]  # a copy of the batch's first crystal
    assert r0[2]["global"] == r1[2]["global"] == [1]


def test_unshuffled_sampler_keeps_the_split_order() -> None:
    keys = list(GlobalBatchSampler(5, 2, Dist(1, 2, 1), shuffle=False))
    assert keys == [[(1, 1.0, 2)], [(3, 1.0, 2)], [(4, 0.0, 1)]]


# -------------------------------------------------------------------------- the environment
def test_torchrun_environment() -> None:
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1"}
    env |= {"MASTER_PORT": "29511", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "8"}
    assert from_env(env) == Launch(3, 4, 1, "n1", 29511, "torchrun")  # torchrun's vars win


def test_srun_step_environment() -> None:
    env = {
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NODELIST": "gpu[07-08],cpu1",
        "SLURM_JOB_NODELIST": "gpu[07-09],cpu1",
        "SLURM_JOB_ID": "123456",
    }
    assert from_env(env) == Launch(1, 2, 1, "gpu07", 20_000 + 123456 % 20_000, "slurm")
    assert from_env(env | {"MASTER_PORT": "4000", "MASTER_ADDR": "x"}).master_port == 4000


def test_batch_script_and_single_task_are_plain_processes() -> None:
    # sbatch -n 2 runs the script once, with SLURM_NTASKS=2 and no step: not a rank
    assert from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0"}) is None
    assert from_env({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"}) is None
    assert from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert from_env({}) is None


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [
        ("vm", "vm"),
        ("node[03-05,09]", "node03"),
        ("a1,b[2-3]", "a1"),
        ("rack[1-2]-n[01-04]", "rack1-n01"),
        ("gpu[7,9]", "gpu7"),
    ],
)
def test_first_host_of_a_slurm_host_list(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


def test_devices_must_follow_the_launcher() -> None:
    launch = Launch(0, 2, 0, "127.0.0.1", 1, "torchrun")
    assert distributed.world_size(1, launch) == 2
    assert distributed.world_size(2, launch) == 2
    assert distributed.world_size(3, None) == 3
    with pytest.raises(ConfigError, match=r"trainer.devices=4 but torchrun started 2"):
        distributed.world_size(4, launch)


def test_devices_is_validated_and_result_neutral() -> None:
    with pytest.raises(ConfigError, match=r"trainer.devices=0 must be >= 1"):
        validate(compose("trainer.devices=0"))
    assert config_hash(compose("trainer.devices=2")) == config_hash(compose())


def test_device_may_name_one_gpu_by_index() -> None:
    validate(compose("trainer.device=cuda:1"))  # no CUDA needed to validate
    for bad in ("cuda:x", "cuda:", "gpu", "cuda:-1"):
        with pytest.raises(ConfigError, match=r"trainer.device='.*' is not one of .* or cuda:N"):
            validate(compose(f"trainer.device={bad}"))
    with pytest.raises(ConfigError) as err:
        validate(compose("trainer.device=cuda:1", "trainer.devices=2"))
    assert err.value.problems == [
        "trainer.device=cuda:1 names one GPU but trainer.devices=2 needs 2: use "
        "trainer.device=cuda (ranks take cuda:0 .. cuda:1; choose the GPUs with "
        "CUDA_VISIBLE_DEVICES)"
    ]


def test_epoch_seeds_keep_rank_zero_and_differ_per_rank() -> None:
    assert epoch_seed(42, 3) == epoch_seed(42, 3, rank=0) == 42 * 100_003 + 3
    seeds = {epoch_seed(42, 3, r) for r in range(4)} | {epoch_seed(42, 4, r) for r in range(4)}
    assert len(seeds) == 8
    assert epoch_seed(42, 3, 2) == epoch_seed(42, 3, 2)


def test_graph_freezing_on_several_processes_is_refused() -> None:
    from tests.conftest import compose

    with pytest.raises(ConfigError, match=r"model.freeze_graph_epochs=2 with trainer.devices=2"):
        validate(
            compose("trainer.devices=2", "model.init_from=/some/run", "model.freeze_graph_epochs=2")
        )
