"""Evaluating runs for analysis on the splits they recorded.

Everything is evaluated on the split a run *recorded* (``split.json``); a second run must have
recorded the same ids for that split, or the analysis refuses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fusion_tuner.errors import AnalysisError
from fusion_tuner.rundir import Run


def same_ids(a: Run, b: Run, split: str) -> list[str]:
    """The ids of ``split`` recorded by run A, after checking run B recorded the same set."""
    ids_a, ids_b = a.split[split], b.split[split]
    if set(ids_a) != set(ids_b):
        only_a, only_b = len(set(ids_a) - set(ids_b)), len(set(ids_b) - set(ids_a))
        raise AnalysisError(
            f"the {split} splits differ: {only_a} ids only in {a.name}, {only_b} only in {b.name} "
            f"(of {len(ids_a)} / {len(ids_b)}); these runs cannot be compared on the same crystals"
        )
    return ids_a


def datamodule_for(run: Run) -> Any:
    """The run's data module (featurised and tokenised as the run was; from the cache)."""
    from fusion_tuner.data.module import build_datamodule

    dm = build_datamodule(run.config)
    if dm.info.tokenizer_id != run.data_info["tokenizer_id"]:
        raise AnalysisError(
            f"{run.name}: the data now tokenises differently ({dm.info.tokenizer_id}) than when the "
            f"model was trained ({run.data_info['tokenizer_id']})"
        )
    return dm


def loader_for(run: Run, ids: list[str], batch_size: int = 64) -> Any:
    """A loader over exactly ``ids`` (in that order), featurised and tokenised as the run was."""
    dm = datamodule_for(run)
    missing = [i for i in ids if i not in dm.graphs.row_of]
    if missing:
        raise AnalysisError(
            f"{run.name}: {len(missing)} recorded ids are not in its data (e.g. {missing[:3]})"
        )
    return dm.loader(ids, batch_size=batch_size, shuffle=False, num_workers=0)


@torch.no_grad()
def predict_ids(run: Run, ids: list[str], device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(target, prediction) of the run's model on ``ids``, in that order."""
    model = run.model.to(device).eval()
    targets, preds = [], []
    for batch in loader_for(run, ids):
        out = model(batch.to(device))
        targets.append(batch.y.double().cpu().numpy())
        preds.append(out.prediction.double().cpu().numpy())
    return np.concatenate(targets), np.concatenate(preds)
