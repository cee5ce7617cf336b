"""Train/val/test splits: seeded random fractions, or a fixed JARVIS-leaderboard split file."""

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


def fixed_split(
    ids: Sequence[str], wanted: dict[str, list[str]]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Assign ``ids`` to the splits of a split file.

    An id matches a split entry when equal to it or to its canonical form (``POSCAR-JVASP-1.vasp``
    matches ``JVASP-1``). Returns the split and a report: per split, how many of the file's ids
    are missing from the data, and how many data ids belong to no split.
    """
    by_key: dict[str, str] = {}
    for cid in ids:
        by_key.setdefault(cid, cid)
        by_key.setdefault(canonical_id(cid), cid)
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
