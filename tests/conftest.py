"""Shared fixtures: an isolated cache per test session, the real conf/, the real samples bundled
with the package, ../shared data, and the runs that many tests read, trained once per session
in this process (tests/helpers/runs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test module is collected (collection imports transformers and huggingface_hub,
# which read these once): a hub lookup fails at once instead of retrying for ~45 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep every cache of the suite inside a temporary folder (never ~/.cache)."""
    root = tmp_path_factory.mktemp("ft_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSION_TUNER_CACHE_DIR", str(root))
    mp.setenv("FUSION_TUNER_JARVIS_DIR", str(root / "jarvis_never_downloaded"))
    mp.setenv("WANDB_MODE", "disabled")
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield root
    mp.undo()


@pytest.fixture
def samples() -> Path:
    """The real samples bundled with the package (``sample://``): the perovskite table, the 50
    labelled JARVIS structures, the 1,104 offline JARVIS records, their texts, and four
    leaderboard files, in the folder layout of ``../shared/data``; always present."""
    from fusion_tuner.paths import SAMPLES_DIR

    return SAMPLES_DIR


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real JARVIS files that are not bundled, e.g. the figshare-named store
    zips); tests using it skip when it is absent. Prefer ``samples`` for the bundled files."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found (real JARVIS test data lives beside the repo)")
    return SHARED_DATA


def compose(*overrides: str, cache: Path | None = None):
    """Compose the real config; with ``cache`` the featurised cache goes there."""
    from fusion_tuner import compose_config

    extra = [f"dataset.cache_dir={cache}"] if cache else []
    return compose_config([*overrides, *extra])


# ------------------------------------------------------------------ runs shared by the session
# The same demo data and split (dataset.demo_size=80 for the analysis runs), trained once.
ANALYSIS = ["budget.max_epochs=3", "dataset.demo_size=80"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A completed TINY run, seed 42 (the suite's reference run: read it, never write into it)."""
    from tests.helpers.runs import train_run

    return train_run(tmp_path_factory.mktemp("trained") / "seed42")


@pytest.fixture(scope="session")
def trained_run_seed7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same TINY run as ``trained_run`` with ``random_seed=7`` (same data and split)."""
    from tests.helpers.runs import train_run

    return train_run(tmp_path_factory.mktemp("trained") / "seed7", "random_seed=7")


@pytest.fixture(scope="session")
def analysis_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs on one split of 80 demo crystals: ``base`` (baseline, seed 42), ``seed2``,
    ``nocross`` (e09_no_cross_attention), ``graph`` (text=none), and ``othersplit`` (another
    split seed, so another test set)."""
    from tests.helpers.runs import train_run

    root = tmp_path_factory.mktemp("analysis_runs")
    spec = {
        "base": ["experiment=baseline"],
        "seed2": ["experiment=baseline", "random_seed=2"],
        "nocross": ["experiment=e09_no_cross_attention"],
        "graph": ["text=none"],
        "othersplit": ["experiment=baseline", "dataset.split_seed=7"],
    }
    return {name: train_run(root / name, *ANALYSIS, *ov) for name, ov in spec.items()}
