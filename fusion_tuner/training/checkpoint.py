"""Self-describing checkpoints, written atomically, read with ``weights_only=True`` only.

A checkpoint holds the resolved config, the data info the model was built for, the target
normaliser, the model weights and the code version; ``last.pt`` adds the optimizer, scheduler,
early-stopping and RNG states and the history so far, so a run resumes exactly.
"""

from __future__ import annotations

import pickle
import random
import zipfile
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


# Pickle opcodes that import or call something: what only arbitrary unpickling can restore.
_OBJECT_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}


def _pickle_with_objects(path: Path) -> bool:
    """True for a readable pickle that imports or calls something (scanned, never executed)."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            return any(op.name in _OBJECT_OPCODES for op, _, _ in pickletools.genops(fh))
    except Exception:  # not a pickle at all: corrupt
        return False


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: a missing, truncated or corrupt file, or one that would need arbitrary
            unpickling (refused: it could run code). The message names the file and why.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        if _pickle_with_objects(path):
            raise CheckpointError(
                f"refusing to load {path}: a plain pickle, not a PyTorch checkpoint archive, "
                "holding objects that only arbitrary unpickling could restore, which can run "
                "code. Only fusion_tuner checkpoints are accepted."
            )
        raise CheckpointError(
            f"checkpoint {path} is unreadable: not a PyTorch checkpoint archive ({size} bytes; "
            "truncated or corrupt)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # a class or function weights_only does not allow
            raise CheckpointError(
                f"refusing to load {path}: it holds objects that only arbitrary unpickling could "
                "restore, which can run code. Only fusion_tuner checkpoints are accepted."
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is unreadable (corrupt pickle data inside the archive)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt: {first})"
        ) from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a fusion_tuner checkpoint (no model_state/config)")
    return ckpt
