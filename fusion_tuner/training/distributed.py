"""One run on several processes: PyTorch DistributedDataParallel (DDP) for ``trainer.devices``.

Three ways a run gets several processes ("ranks"), one per GPU (or per CPU share):

* ``trainer.devices=N`` on one machine: :func:`spawn` starts N processes (``spawn`` start
  method) that meet on a free TCP port of 127.0.0.1;
* ``torchrun --nproc-per-node=N -m fusion_tuner ...``: every process is a rank
  (:func:`fusion_tuner.launch.from_env` reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR`` and ``MASTER_PORT``);
* ``srun`` (and the SLURM launcher with ``hydra.launcher.tasks_per_node=N``): ``from_env``
  reads ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` and ``SLURM_LOCALID``, the rendezvous host is
  the first host of the step's node list. A batch script without ``srun`` (where SLURM sets
  ``SLURM_NTASKS`` but no step) is one process, never a rank of a job that is not running.

Backend: ``gloo`` on the CPU, ``nccl`` on CUDA (rank ``r`` uses ``cuda:LOCAL_RANK``, or
``cuda:0`` when the launcher gives each task one visible GPU). :class:`Dist` is what the trainer
knows of all this: its rank, the number of ranks, and the few collectives it needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import logging
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist

from fusion_tuner.errors import ConfigError
from fusion_tuner.launch import Launch
from fusion_tuner.runtime import resolve_device

log = logging.getLogger("fusion_tuner")

# How long a collective may wait for the slowest rank (data loading happens before the first
# one and is never waited for in a collective, so this bounds only a stuck peer).
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Dist:
    """This process's place among the ranks of one run (``world == 1``: a plain run).

    Attributes:
        rank: 0 .. world-1; rank 0 writes every file of the run.
        world: the number of ranks.
        local_rank: the rank on this machine (its GPU index).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (``[obj]`` for a plain run)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def share(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (what the other ranks pass is ignored)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_rows(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``rows`` (same shape on every rank), in rank order; no gradient."""
        if not self.active:
            return [rows.detach()]
        out = [torch.empty_like(rows) for _ in range(self.world)]
        tdist.all_gather(out, rows.detach().contiguous())
        return out


SINGLE = Dist()


def global_rows(
    local: torch.Tensor, weight: torch.Tensor, global_batch: int, dist: Dist
) -> torch.Tensor:
    """The rows of the whole global batch, in its order, from every rank's ``local`` rows.

    This rank's rows stay in the autograd graph; the other ranks' arrive as constants. A loss on
    the result is the plain run's loss on the whole batch, identical on every rank; its gradient
    through this rank's rows is exact, so ``world`` x the loss, averaged by DDP over the ranks,
    gives the plain run's gradient.

    Args:
        local: (n, C) this rank's rows (a ghost's included).
        weight: (n,) 1 for real crystals, 0 for a ghost.
        global_batch: the number of crystals of the global batch.
        dist: this rank among the run's ranks.

    Returns:
        (global_batch, C) the rows of every rank's real crystals, in rank order.
    """
    width = math.ceil(global_batch / dist.world)  # the largest slice (>= 1, a ghost's size)
    packed = torch.zeros(width, local.size(1) + 1, dtype=local.dtype, device=local.device)
    packed[: local.size(0), :-1] = local.detach()
    packed[: local.size(0), -1] = weight.to(local.dtype)
    parts = []
    for rank, part in enumerate(dist.all_gather_rows(packed)):
        if rank == dist.rank:
            parts.append(local[weight > 0])
        else:
            parts.append(part[part[:, -1] > 0, :-1])
    return torch.cat(parts)


# ----------------------------------------------------------------------------------- launch
def dist_of(launch: Launch) -> Dist:
    """The :class:`Dist` of a launched process."""
    return Dist(launch.rank, launch.world, launch.local_rank)


def world_size(cfg_devices: int, launch: Launch | None) -> int:
    """How many ranks the run has: the launcher's count, else ``trainer.devices``.

    Raises:
        ConfigError: ``trainer.devices`` is neither 1 (follow the launcher) nor its count.
    """
    if launch is None:
        return cfg_devices
    if cfg_devices not in (1, launch.world):
        raise ConfigError(
            [
                f"trainer.devices={cfg_devices} but {launch.source} started {launch.world} "
                f"processes for this run: set trainer.devices={launch.world} (or leave it at 1 "
                "to follow the launcher), or start as many processes as trainer.devices"
            ]
        )
    return launch.world


def rank_device(name: str, dist: Dist) -> torch.device:
    """The device of this rank for ``trainer.device`` (``resolve_device`` for a plain run).

    A CUDA rank uses ``cuda:local_rank``, or ``cuda:0`` where it sees a single GPU (a SLURM
    task with ``gpus_per_task=1``); it becomes the process's current CUDA device.
    """
    device = resolve_device(name)
    if not dist.active or device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(
            [
                f"trainer.device={name} names one GPU but this run has {dist.world} ranks: use "
                "trainer.device=cuda (each rank takes the GPU of its local rank)"
            ]
        )
    count = torch.cuda.device_count()
    if dist.local_rank < count:
        index = dist.local_rank
    elif count == 1:
        index = 0
    else:
        raise RuntimeError(
            f"rank {dist.rank} (local rank {dist.local_rank}) sees {count} CUDA devices: give "
            "each process of the run one GPU, or make all of a node's GPUs visible to each"
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def check_local_devices(devices: int, device_name: str) -> torch.device:
    """Before spawning ``devices`` local ranks: the kind of device they use.

    Raises:
        ConfigError: more ranks than visible GPUs on CUDA.
    """
    device = resolve_device(device_name)
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(
            [
                f"trainer.devices={devices} but only {torch.cuda.device_count()} CUDA device(s) "
                f"are visible: set trainer.devices={torch.cuda.device_count()} or less (or "
                "trainer.device=cpu to train on CPU processes)"
            ]
        )
    return device


def init(launch: Launch, backend: str) -> Dist:
    """Join the run's process group (every rank calls this with the same master)."""
    tdist.init_process_group(
        backend,
        init_method=f"tcp://{launch.master_addr}:{launch.master_port}",
        rank=launch.rank,
        world_size=launch.world,
        timeout=TIMEOUT,
    )
    return dist_of(launch)


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of an epoch's dropout and other random draws on ``rank``. Rank 0 (and a plain
    run) keeps ``seed * 100_003 + epoch``; other ranks draw their own masks from (seed, epoch,
    rank), so a resumed run is exact on every rank."""
    base = seed * 100_003 + epoch
    if rank == 0:
        return base
    return int(np.random.SeedSequence([base, rank]).generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------------------------ spawn
class RankFailed(RuntimeError):
    """A rank of a spawned run failed; the message is its error. ``rank`` is the rank that
    raised and ``rank_traceback`` its traceback (None and empty when no rank raised: one died)."""

    def __init__(self, message: str, rank: int | None = None, rank_traceback: str = "") -> None:
        super().__init__(message)
        self.rank, self.rank_traceback = rank, rank_traceback


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``), so a
    killed run never leaves ranks writing into its directory; exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _rank_main(
    local_rank: int,
    parent_pid: int,
    world: int,
    port: int,
    backend: str,
    fn: Callable[..., Any],
    args: tuple,
    queue: Any,
) -> None:
    """Body of a spawned rank: join the group, run ``fn(dist, *args)``, report to the parent."""
    die_with_parent(parent_pid)
    launch = Launch(local_rank, world, local_rank, "127.0.0.1", port, "spawn")
    code = 0
    try:
        dist = init(launch, backend)
        result = fn(dist, *args)
        if dist.is_main:
            queue.put(("result", 0, result))
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # reported to the parent with its traceback (only rank 0
        # writes train.log, and the parent may stop rank 0 before it fails in its turn)
        message = f"{type(exc).__name__}: {exc}"[:4000]
        queue.put(("error", local_rank, message, traceback.format_exc()[-20000:]))
        code = 1
    finally:
        with contextlib.suppress(Exception):
            shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_signal(code: int | None) -> int | None:
    """The signal (SIGTERM/SIGINT) that ended a rank with exit code ``code``, if any."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if code in (-sig, 128 + sig):
            return int(sig)
    return None


def _describe_exit(rank: int, code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"rank {rank} was killed by {name}{hint}"
    return f"rank {rank} exited with status {code}"


def spawn(
    fn: Callable[..., Any],
    world: int,
    args: tuple,
    backend: str,
    on_interrupt: Callable[[int], BaseException] | None = None,
) -> Any:
    """Run ``fn(dist, *args)`` in ``world`` new processes (ranks 0..world-1) and return rank 0's
    result.

    The ranks die with this process (also when it is SIGKILLed). When a rank fails, the others
    are stopped and :class:`RankFailed` carries the first error, or names the rank a signal
    killed (whose peers then fail with lost-connection errors); a rank ended by SIGTERM/SIGINT
    raises ``on_interrupt(signal)``. Whatever this process is interrupted by (SIGTERM turned
    into an exception, Ctrl-C) stops the ranks before it propagates.
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    procs = _start_ranks(ctx, queue, fn, world, args, backend)
    try:
        messages = _wait_for_ranks(procs, queue, on_interrupt)
    finally:
        _stop(procs)
    results = [m[2] for m in messages if m[0] == "result"]
    if not results:
        raise RankFailed("rank 0 ended without a result")
    return results[0]


def _start_ranks(
    ctx: Any, queue: Any, fn: Callable[..., Any], world: int, args: tuple, backend: str
) -> list[Any]:
    """Start ``world`` processes of :func:`_rank_main` that report to ``queue``."""
    port = free_port()
    procs = [
        ctx.Process(
            target=_rank_main,
            args=(rank, os.getpid(), world, port, backend, fn, args, queue),
            name=f"fusion_tuner-rank{rank}",
        )
        for rank in range(world)
    ]
    for p in procs:
        p.start()
    return procs


def _drain(queue: Any, messages: list[tuple]) -> None:
    """Move what the ranks have put on ``queue`` so far to ``messages``."""
    while not queue.empty():
        messages.append(queue.get())


def _wait_for_ranks(
    procs: list[Any], queue: Any, on_interrupt: Callable[[int], BaseException] | None
) -> list[tuple]:
    """Wait until every rank has exited 0 and return their messages; raise as soon as one
    exits otherwise (see :func:`_rank_failure`)."""
    messages: list[tuple] = []
    while True:
        codes = [p.exitcode for p in procs]
        _drain(queue, messages)
        bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if bad:
            time.sleep(0.5)  # let a failing rank's message arrive
            _drain(queue, messages)
            raise _rank_failure(bad, messages, on_interrupt)
        if all(c == 0 for c in codes):
            return messages
        from multiprocessing.connection import wait

        wait([p.sentinel for p in procs if p.exitcode is None], timeout=1.0)


def _rank_failure(
    bad: list[tuple[int, int]],
    messages: list[tuple],
    on_interrupt: Callable[[int], BaseException] | None,
) -> BaseException:
    """What to raise for the ranks that exited non-zero (``bad``: (rank, exit code))."""
    # a rank stopped by a signal explains the others' lost-peer errors
    sig = next((s for s in map(_exit_signal, (c for _, c in bad)) if s), None)
    if sig is not None and on_interrupt is not None:
        return on_interrupt(sig)
    errors = [m for m in messages if m[0] == "error"]
    reported = {m[1] for m in errors}
    killed = [(r, c) for r, c in bad if c < 0 and r not in reported]
    if killed:  # a rank killed by a signal (SIGKILL, SIGSEGV): the others' errors
        return RankFailed(_describe_exit(*killed[0]))  # only say they lost it
    if errors:  # the first reported is the cause; later ones lost their peer
        _, rank, message, rank_traceback = errors[0]
        return RankFailed(f"rank {rank}: {message}", rank, rank_traceback)
    return RankFailed(_describe_exit(*bad[0]))


def _stop(procs: list[Any]) -> None:
    """Terminate the ranks still running (SIGTERM, then SIGKILL after 30 s) and reap them."""
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    deadline = time.monotonic() + 30
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.exitcode is None:
            p.kill()
            p.join()


# ---------------------------------------------------------------------------------- logging
CONSOLE_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


@contextlib.contextmanager
def rank_logging(dist: Dist, console: bool) -> Iterator[None]:
    """Rank 0 logs as a plain run does; the other ranks log only errors, prefixed with their
    rank. ``console``: also add a console handler (a spawned rank has none of its own)."""
    pkg = logging.getLogger("fusion_tuner")
    level = pkg.level
    handler = None
    if console:
        handler = logging.StreamHandler(sys.stdout)
        prefix = "" if dist.is_main else f"[rank {dist.rank}]"
        handler.setFormatter(logging.Formatter(prefix + CONSOLE_FORMAT))
        pkg.addHandler(handler)
    pkg.setLevel(logging.INFO if dist.is_main else logging.ERROR)
    try:
        yield
    finally:
        pkg.setLevel(level)
        if handler is not None:
            pkg.removeHandler(handler)
