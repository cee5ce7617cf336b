"""Packaging: every package is listed in pyproject, and the configs ship inside the package.

The full check (sdist -> wheel -> fresh venv -> ``--cfg job`` and a demo run from another
directory) is ``.ci/install-check.sh``, which CI runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fusion_tuner import paths

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package_and_maps_conf() -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("fusion_tuner", "hydra_plugins")
        for p in (REPO / top).rglob("__init__.py")
    }
    # hydra_plugins: the namespace package itself, for the editable install's plugin scan
    assert set(tool["packages"]) == on_disk | {"fusion_tuner.conf", "hydra_plugins"}
    assert tool["package-dir"] == {"fusion_tuner.conf": "conf"}
    assert tool["package-data"]["fusion_tuner.conf"] == ["**/*.yaml"]
    assert tool["package-data"]["fusion_tuner.data"] == ["samples/**/*"]


def test_conf_dir_prefers_the_packaged_configs(tmp_path: Path, monkeypatch) -> None:
    packaged, beside = tmp_path / "pkg" / "conf", tmp_path / "conf"
    monkeypatch.setattr(paths, "CONF_CANDIDATES", (packaged, beside))
    beside.mkdir()
    (beside / "config.yaml").write_text("defaults: []\n")
    assert paths.conf_dir() == beside  # a checkout: conf/ beside the package
    packaged.mkdir(parents=True)
    (packaged / "config.yaml").write_text("defaults: []\n")
    assert paths.conf_dir() == packaged  # an installed wheel
    (packaged / "config.yaml").unlink()
    (beside / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.yaml") as err:
        paths.conf_dir()
    assert str(packaged) in str(err.value)


def test_this_checkout_uses_the_repository_conf() -> None:
    assert paths.conf_dir() == REPO / "conf" == paths.CONF_DIR
