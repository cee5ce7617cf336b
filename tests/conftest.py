"""Shared fixtures: an isolated cache per test session, the real conf/, the real samples bundled
with the package, and ../shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    from fusion_tuner.data.paths import SAMPLES_DIR

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
