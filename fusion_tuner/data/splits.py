"""Train/val/test splits: seeded random fractions, or a fixed JARVIS-leaderboard split file,
whose labels can be compared with the data set's targets (:func:`compare_labels`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion_tuner.data.records import canonical_id

SPLITS = ("train", "val", "test")


def random_split(
    ids: Sequence[str], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Shuffle ``ids`` with ``seed`` and cut val and test (rounded down) off; the rest trains.

    The split depends only on the id list, the fractions and ``seed`` (``dataset.split_seed``),
    never on the model seed, so a seed ensemble shares one test set.
    """
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = int(fractions[1] * len(ids))
    n_test = int(fractions[2] * len(ids))
    n_train = len(ids) - n_val - n_test
    picked = [ids[i] for i in order]
    return {
        "train": picked[:n_train],
        "val": picked[n_train : n_train + n_val],
        "test": picked[n_train + n_val :],
    }


def _by_key(ids: Sequence[str]) -> dict[str, str]:
    """Exact and canonical form of each data id -> the data id."""
    by_key: dict[str, str] = {}
    for cid in ids:
        by_key.setdefault(cid, cid)
        by_key.setdefault(canonical_id(cid), cid)
    return by_key


def fixed_split(
    ids: Sequence[str], wanted: dict[str, list[str]]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Assign ``ids`` to the splits of a split file.

    An id matches a split entry when equal to it or to its canonical form (``POSCAR-JVASP-1.vasp``
    matches ``JVASP-1``). Returns the split and a report: per split, how many of the file's ids
    are missing from the data, and how many data ids belong to no split.
    """
    by_key = _by_key(ids)
    out: dict[str, list[str]] = {}
    report: dict[str, Any] = {"missing_from_data": {}}
    used: set[str] = set()
    for name in SPLITS:
        found = [by_key[w] for w in wanted[name] if w in by_key]
        out[name] = [cid for cid in found if cid not in used]
        used.update(out[name])
        report["missing_from_data"][name] = len(wanted[name]) - len(found)
    report["not_in_split_file"] = len(ids) - len(used)
    return out, report


def labels_match(a: float, b: float, tolerance: float) -> bool:
    """``|a - b| <= tolerance * max(1, |b|)``: absolute below 1, relative above."""
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def compare_labels(
    ids: Sequence[str],
    targets: Sequence[float],
    labels: dict[str, dict[str, float]],
    tolerance: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Compare a split file's labels with the data set's targets of the same crystals.

    Args:
        ids, targets: the data's crystal ids and their targets (same order).
        labels: the split file's ``{split: {id: label}}`` (ids matched as in :func:`fixed_split`).
        tolerance: see :func:`labels_match`.

    Returns:
        ``{data id: label}`` for every matched id, and the report: per split the counts
        ``match`` (within the tolerance), ``differ``, ``missing`` (file ids absent from the
        data), the largest absolute difference, and up to five differing examples
        ``[id, target, label]``.
    """
    by_key, target_of = _by_key(ids), dict(zip(ids, targets, strict=True))
    found: dict[str, float] = {}
    report: dict[str, Any] = {"tolerance": tolerance}
    for name in SPLITS:
        counts = {"match": 0, "differ": 0, "missing": 0, "max_abs_diff": 0.0, "examples": []}
        for fid, label in labels[name].items():
            cid = by_key.get(fid)
            if cid is None:
                counts["missing"] += 1
                continue
            found[cid] = label
            target = float(target_of[cid])
            counts["max_abs_diff"] = max(counts["max_abs_diff"], abs(target - label))
            if labels_match(target, label, tolerance):
                counts["match"] += 1
            else:
                counts["differ"] += 1
                if len(counts["examples"]) < 5:
                    counts["examples"].append([cid, target, label])
        report[name] = counts
    return found, report
