"""The batches of a run on several ranks: each global batch cut into one slice per rank.

A plain run's loader draws one permutation per epoch and cuts it into batches of
``batch.batch_size``. :class:`GlobalBatchSampler` draws the *same* permutation from the same
generator (so the DataLoader consumes the generator exactly as a shuffled plain loader does),
cuts the same global batches, and gives rank ``r`` the ``r``-th contiguous slice of each (sizes
differ by at most one, larger slices first, as ``numpy.array_split``). A rank whose slice is
empty (a last batch smaller than the number of ranks) gets a *ghost*: a copy of the batch's
first crystal with weight 0, so every rank takes part in every step.

Every sample of a sharded loader carries ``shard_weight`` (1, or 0 for a ghost),
``shard_position`` (its index in the split: the plain loader's order when not shuffled) and
``shard_size`` (the size of its global batch), which the loss and the tallies use to make
the ranks' step equal the plain run's. (Their names hold neither "index" nor "batch": PyG's
batching would offset such attributes.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch_geometric.loader import DataLoader

from fusion_tuner.training.distributed import Dist

# (index in the split, weight, size of the global batch)
Key = tuple[int, float, int]


def slice_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous slice of ``n`` items cut ``world`` ways."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class GlobalBatchSampler(torch.utils.data.Sampler[list[Key]]):
    """This rank's slice of each global batch, as the keys :class:`ShardView` serves.

    Args:
        n: the number of crystals in the split.
        batch_size: the global batch size (``batch.batch_size``).
        dist: this rank among the run's ranks.
        shuffle: draw a new permutation per iteration (the training split) or keep the order.
        generator: the generator the permutation is drawn from (pass the same one to the
            DataLoader, which draws its worker seed from it first, as for a plain loader).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        dist: Dist,
        shuffle: bool,
        generator: torch.Generator | None = None,
    ) -> None:
        self.n, self.batch_size, self.dist = n, batch_size, dist
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[list[Key]]:
        if self.shuffle:
            if self.generator is None:
                raise ValueError("a shuffled GlobalBatchSampler needs a generator")
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            order = list(range(self.n))
        for start in range(0, self.n, self.batch_size):
            batch = order[start : start + self.batch_size]
            lo, hi = slice_bounds(len(batch), self.dist.world, self.dist.rank)
            if hi > lo:
                yield [(i, 1.0, len(batch)) for i in batch[lo:hi]]
            else:
                yield [(batch[0], 0.0, len(batch))]


class ShardView(torch.utils.data.Dataset):
    """A dataset served by key: the sample at a key's index, with the key's weight and global
    batch size attached."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Key) -> Any:
        index, weight, global_batch = key
        data = self.dataset[index]
        data.shard_weight = torch.tensor([weight])
        data.shard_position = torch.tensor([index])
        data.shard_size = torch.tensor([global_batch])
        return data


def sharded_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    dist: Dist,
    shuffle: bool,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """This rank's loader over ``dataset``: its slices of the plain loader's batches."""
    sampler = GlobalBatchSampler(len(dataset), batch_size, dist, shuffle, generator)  # type: ignore[arg-type]
    return DataLoader(
        ShardView(dataset), batch_sampler=sampler, generator=generator, num_workers=num_workers
    )
