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


def config_from_dict(raw: dict[str, Any], path: Path | str | None = None) -> Config:
    """Rebuild a typed :class:`Config` from a checkpoint's plain dict (schema-checked).

    Raises:
        CheckpointError: naming ``path`` (the checkpoint) and the first key that does not fit
            this version's schema (a config from another version, or a tampered one).
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    where = f"checkpoint {path}" if path is not None else "the checkpoint"
    check_plain(raw, "config", path if path is not None else "the checkpoint")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), raw)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except (OmegaConfBaseException, ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{where} holds a config this version of fusion_tuner cannot use ({first}); it was "
            "written by another version or altered. Retrain the run with this version, or use "
            "the version that wrote it."
        ) from None


# What a checkpoint's data_info must hold for the model to be rebuilt and fed as in training.
DATA_INFO_KEYS = (
    "atom_feature_dim",
    "cutoff",
    "max_neighbors",
    "vocab_size",
    "pad_token_id",
    "max_length",
    "tokenizer_id",
)


def check_data_info(info: Any, path: Path | str) -> dict[str, Any]:
    """``info`` when it holds :data:`DATA_INFO_KEYS`; else a :class:`CheckpointError`."""
    check_plain(info, "data_info", path)
    missing = [k for k in DATA_INFO_KEYS if k not in info]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} has no {', '.join(missing)} in its data_info (written by "
            "another version, or altered): the model cannot be rebuilt as it was trained"
        )
    return info


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


# A resolved config is a few hundred values, its data info a dozen: these caps are far above
# any real one and stop a file of shared references (``x = [x, x]`` sixty times: a few bytes
# that expand to 2**60 values) before anything walks or copies it.
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_NODES = 100_000


def _check_members(path: Path) -> None:
    """Refuse an archive whose members are compressed or larger than the file itself.

    ``torch.save`` stores every member uncompressed, so a member's size cannot exceed the
    file's; a compressed (or lying) member could expand to gigabytes inside ``torch.load``.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt: {exc})"
        ) from None
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"refusing to load {path}: its member {info.filename!r} is compressed "
                f"(zip method {info.compress_type}, {info.file_size} bytes unpacked from "
                f"{info.compress_size}); torch.save stores members uncompressed, so this file "
                "was rewritten by something else"
            )
        total += info.file_size
        if info.file_size != info.compress_size or info.file_size > size or total > size:
            raise CheckpointError(
                f"refusing to load {path}: its member {info.filename!r} claims {info.file_size} "
                f"bytes, more than the {size}-byte file can hold (corrupt or tampered)"
            )


def check_plain(value: Any, where: str, path: Path | str) -> None:
    """Refuse a checkpoint's ``config`` / ``data_info`` that is not a small tree of plain values.

    Walks iteratively, counting every value it visits (a shared sub-list counts each time it
    is reached), and stops at :data:`MAX_CONFIG_DEPTH` levels or :data:`MAX_CONFIG_NODES`
    values, so a shared-reference bomb is refused in microseconds.
    """
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{path} is not a usable fusion_tuner checkpoint: its {where} is a "
            f"{type(value).__name__}, not a mapping (corrupt, tampered or foreign)"
        )
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_CONFIG_NODES or depth > MAX_CONFIG_DEPTH:
            limit = (
                f"more than {MAX_CONFIG_NODES} values"
                if nodes > MAX_CONFIG_NODES
                else f"nested more than {MAX_CONFIG_DEPTH} levels deep"
            )
            raise CheckpointError(
                f"refusing to load {path}: its {where} is {limit}, far beyond any fusion_tuner "
                "config (corrupt or tampered)"
            )
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise CheckpointError(
                        f"{path} is not a usable fusion_tuner checkpoint: its {where} has a "
                        f"non-string key of type {type(key).__name__} (corrupt or tampered)"
                    )
                stack.append((sub, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, depth + 1) for sub in item)
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            raise CheckpointError(
                f"{path} is not a usable fusion_tuner checkpoint: its {where} holds a "
                f"{type(item).__name__} where plain values belong (corrupt or tampered)"
            )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Before loading, the archive's members must be stored uncompressed and fit in the file
    (no decompression bomb); after it, ``config`` and ``data_info`` must be small trees of
    plain values (no shared-reference bomb reaches OmegaConf).

    Raises:
        CheckpointError: a missing, truncated or corrupt file, or one that would need arbitrary
            unpickling (refused: it could run code), or a compressed, oversized or deeply
            nested one. The message names the file and why.
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
    _check_members(path)
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
    check_plain(ckpt["config"], "config", path)
    if "data_info" in ckpt:
        check_plain(ckpt["data_info"], "data_info", path)
    return ckpt
