"""What a run shows while it works: its log file and the epoch progress display."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class RunLog:
    """Attach the run's log file to the package logger for the duration of one run."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path)
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
