"""Reading runs for analysis: run directories or checkpoints, their recorded splits and data.

Everything is evaluated on the split a run *recorded* (``split.json``); a second run must have
recorded the same ids for that split, or the analysis refuses.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusion_tuner.errors import CheckpointError


class AnalysisError(ValueError):
    """Inputs that cannot be compared as asked (different test ids, missing files, ...)."""


@dataclass
class RunRef:
    """A run located from a run directory or a checkpoint path."""

    run_dir: Path
    checkpoint: Path
    name: str

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.run_dir / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def split(self) -> dict[str, list[str]]:
        path = self.run_dir / "split.json"
        if not path.is_file():
            raise AnalysisError(
                f"{path} not found: the run's recorded split is needed to evaluate on it"
            )
        return json.loads(path.read_text())

    def history(self) -> list[dict[str, str]]:
        path = self.run_dir / "history.csv"
        if not path.is_file():
            raise AnalysisError(f"{path} not found")
        with path.open() as fh:
            return list(csv.DictReader(fh))

    def predictions(self, split: str) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        path = self.run_dir / f"predictions_{split}.csv"
        if not path.is_file():
            return None
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        return ([r["id"] for r in rows], np.array([float(r["target"]) for r in rows]),
                np.array([float(r["prediction"]) for r in rows]))  # fmt: skip


def locate(path: str | Path, name: str | None = None) -> RunRef:
    """A run directory (its ``best_model.pt``) or a checkpoint file (its folder is the run)."""
    p = Path(path)
    if p.is_dir():
        ckpt = p / "best_model.pt"
        if not ckpt.is_file():
            raise CheckpointError(
                f"{p} has no best_model.pt: is it a completed fusion_tuner run directory?"
            )
        return RunRef(p, ckpt, name or p.name)
    if p.is_file():
        return RunRef(p.parent, p, name or p.parent.name)
    raise AnalysisError(f"{p} is neither a run directory nor a checkpoint file")


def same_ids(a: RunRef, b: RunRef, split: str) -> list[str]:
    """The ids of ``split`` recorded by run A, after checking run B recorded the same set."""
    ids_a, ids_b = a.split()[split], b.split()[split]
    if set(ids_a) != set(ids_b):
        only_a, only_b = len(set(ids_a) - set(ids_b)), len(set(ids_b) - set(ids_a))
        raise AnalysisError(
            f"the {split} splits differ: {only_a} ids only in {a.name}, {only_b} only in {b.name} "
            f"(of {len(ids_a)} / {len(ids_b)}); these runs cannot be compared on the same crystals"
        )
    return ids_a


def split_loader(run: RunRef, ids: list[str], batch_size: int = 64):
    """Model, config and a loader over exactly ``ids`` (in that order), featurised as the run was."""
    from torch_geometric.loader import DataLoader

    from fusion_tuner.data.dataset import CrystalDataset
    from fusion_tuner.data.module import CrystalDataModule
    from fusion_tuner.training.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(run.checkpoint)
    model, cfg = model_from_checkpoint(ckpt)
    dm = CrystalDataModule(cfg).setup()
    if dm.info.tokenizer_id != ckpt["data_info"]["tokenizer_id"]:
        raise AnalysisError(
            f"{run.name}: the data now tokenises differently ({dm.info.tokenizer_id}) than when the "
            f"model was trained ({ckpt['data_info']['tokenizer_id']})"
        )
    row_of = {cid: i for i, cid in enumerate(dm.graphs["ids"])}
    missing = [i for i in ids if i not in row_of]
    if missing:
        raise AnalysisError(
            f"{run.name}: {len(missing)} recorded ids are not in its data (e.g. {missing[:3]})"
        )
    tokens = dm.datasets["train"].tokens
    ds = CrystalDataset(
        dm.graphs, tokens, [row_of[i] for i in ids], cfg.text.max_length, dm.info.pad_token_id
    )
    return model, cfg, dm, DataLoader(ds, batch_size=batch_size, shuffle=False)


def device_for(name: str = "auto") -> torch.device:
    return torch.device(
        "cuda"
        if name == "auto" and torch.cuda.is_available()
        else ("cpu" if name == "auto" else name)
    )
