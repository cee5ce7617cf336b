"""What a run shows while it works: its log file and the epoch progress display."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class RunLogHandler(logging.FileHandler):
    """The handler of a run's ``train.log`` (see :func:`to_run_log`)."""


def to_run_log(message: str, *args: object, level: int = logging.INFO) -> None:
    """Write a line to the run's ``train.log`` only, not to the console: the epoch lines a
    progress bar shows in its own way, a traceback whose message the console already has."""
    pkg = logging.getLogger("fusion_tuner")
    record = pkg.makeRecord(pkg.name, level, __file__, 0, message, args, None)
    for handler in pkg.handlers:
        if isinstance(handler, RunLogHandler) and level >= handler.level:
            handler.handle(record)


class RunLog:
    """Attach the run's log file to the package logger for the duration of one run."""

    def __init__(self, path: Path) -> None:
        self.handler = RunLogHandler(path)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )

    def __enter__(self) -> RunLog:
        pkg = logging.getLogger("fusion_tuner")
        pkg.addHandler(self.handler)
        if pkg.getEffectiveLevel() > logging.INFO:
            pkg.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("fusion_tuner").removeHandler(self.handler)
        self.handler.close()


def progress(epochs: Iterable[int], mode: str) -> Iterable[int] | Any:
    """``trainer.progress``: a tqdm bar (``bar``, or ``auto`` on a terminal) or the plain
    iterable (``line``: one log line per epoch)."""
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        from tqdm import tqdm

        return tqdm(epochs, desc="epochs", dynamic_ncols=True)
    return epochs


class BatchProgress:
    """Progress within an epoch: a per-batch bar with crystals/s on a terminal (``bar``, or
    ``auto`` on a terminal); otherwise a log line at every quarter of an epoch of at least
    ``MIN_BATCHES_FOR_LINES`` batches (what a SLURM log shows during a long epoch).

    Args:
        batches: the epoch's loader (must have a length).
        mode: ``trainer.progress``.
        epoch: the epoch number, for the label.
    """

    MIN_BATCHES_FOR_LINES = 20

    def __init__(self, batches: Any, mode: str, epoch: int) -> None:
        self.batches, self.epoch = batches, epoch
        self.total = len(batches)
        self.bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Any:
        import time

        start, crystals = time.perf_counter(), 0
        marks = {round(self.total * q / 4) for q in (1, 2, 3)}
        lines = not self.bar and self.total >= self.MIN_BATCHES_FOR_LINES
        bar = None
        if self.bar:
            from tqdm import tqdm

            bar = tqdm(
                total=self.total,
                desc=f"epoch {self.epoch}",
                unit="batch",
                leave=False,
                dynamic_ncols=True,
            )
        try:
            for i, batch in enumerate(self.batches, start=1):
                yield batch
                crystals += int(batch.num_graphs)
                rate = crystals / max(time.perf_counter() - start, 1e-9)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{rate:.1f} crystals/s")
                elif lines and i in marks:
                    logging.getLogger("fusion_tuner").info(
                        "epoch %d: %d%% (%d/%d batches, %.1f crystals/s)",
                        self.epoch,
                        round(100 * i / self.total),
                        i,
                        self.total,
                        rate,
                    )
        finally:
            if bar is not None:
                bar.close()
