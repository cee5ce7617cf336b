"""Self-describing checkpoints, written atomically, read with ``weights_only=True`` only.

A checkpoint holds the resolved config, the data info the model was built for, the target
normaliser, the model weights and the code version; ``last.pt`` adds the optimizer, scheduler,
early-stopping and RNG states and the history so far, so a run resumes exactly.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner import __version__
from fusion_tuner.config import Config
from fusion_tuner.errors import CheckpointError
from fusion_tuner.io import atomic_torch_save

FORMAT = 1


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return asdict(cfg)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Rebuild a typed :class:`Config` from a checkpoint's plain dict (schema-checked)."""
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a ``weights_only``-loadable form."""
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss_next = random.getstate()
    state = {
        "python": {"version": version, "state": torch.tensor(internal), "gauss": gauss_next},
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` plus format and code version atomically (temp file, then rename)."""
    atomic_torch_save({"format": FORMAT, "code_version": __version__, **payload}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: missing file, or a file that needs arbitrary unpickling (refused).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it needs arbitrary unpickling, which can run code "
            f"({str(exc).splitlines()[0]}). Only fusion_tuner checkpoints are accepted."
        ) from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a fusion_tuner checkpoint (no model_state/config)")
    return ckpt
