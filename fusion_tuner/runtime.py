"""Where and how a process computes: device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when visible, else the CPU; ``cpu``; ``cuda`` or ``cuda:N`` (an error
    naming ``trainer.device=auto`` when no such CUDA device is visible)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"trainer.device={name} but no CUDA device is visible; use trainer.device=auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"trainer.device={name} but only {torch.cuda.device_count()} CUDA device(s) are "
                "visible (cuda:0 ...)"
            )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
