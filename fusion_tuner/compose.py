"""Composing a config without a Hydra app: ``conf/`` plus overrides, as typed dataclasses.

Example::

    from fusion_tuner import compose_config
    cfg = compose_config(["budget=quick", "regularization=aggressive", "batch.batch_size=32"])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from fusion_tuner.config import Config, register_configs, validate
from fusion_tuner.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def conf_dir() -> Path:
    """The ``conf/`` folder beside the package (an editable install keeps it there)."""
    if not (CONF_DIR / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{CONF_DIR / 'config.yaml'} not found: install fusion_tuner editable from its "
            "repository (pip install -e .) so that conf/ sits beside the package"
        )
    return CONF_DIR


def _group_keys(group: str) -> list[str]:
    node = next((f for f in fields(Config) if f.name == group), None)
    if node is None or not is_dataclass(node.default_factory):  # type: ignore[arg-type]
        return [f.name for f in fields(Config)]
    return [f.name for f in fields(node.default_factory)]  # type: ignore[arg-type]


def _explain(exc: Exception) -> str:
    """Add the valid keys to Hydra's message for an unknown key."""
    chain, seen = [], exc
    while seen is not None:
        text = str(seen).strip()
        if text and text not in chain and "$VALUE" not in text:
            chain.append(text)
        seen = seen.__cause__ or seen.__context__
    msg = "\n".join(chain)
    match = re.search(r"full_key: ([\w.]+)", msg)
    if match and "not in" in msg:
        parts = match.group(1).split(".")
        valid = _group_keys(parts[0]) if len(parts) > 1 else [f.name for f in fields(Config)]
        msg += f"\nValid keys here: {', '.join(valid)}"
    return msg


NUMERIC_GROUPS = ("phase",)


def normalize_overrides(overrides: Sequence[str]) -> list[str]:
    """Quote numeric options of groups named by number: ``+phase=1`` -> ``+phase="1"``.

    Hydra parses ``1`` as an int, and a config group option must be a string.
    """
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key.lstrip("+~") in NUMERIC_GROUPS and value.isdigit():
            o = f'{key}="{value}"'
        out.append(o)
    return out


def compose_config(overrides: Sequence[str] = (), *, check: bool = True) -> Config:
    """Compose ``conf/config.yaml`` with Hydra overrides, without running a Hydra app.

    Args:
        overrides: e.g. ``["dataset=jarvis", "regularization.graph_dropout=0.3"]``; with
            ``base_sweep=DIR`` the config starts from that sweep's winner, as a run of the CLI
            does (:mod:`fusion_tuner.sweeps.chain`).
        check: run :func:`fusion_tuner.config.validate` (cross-field rules).

    Returns:
        The typed :class:`Config` (dataclasses, not a ``DictConfig``).

    Raises:
        ConfigError: an unknown key, a wrong type, an unknown group option, broken rules, or a
            base sweep that cannot be chained from.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from fusion_tuner.sweeps.chain import ChainError, apply_base

    register_configs()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
            cfg = compose(config_name="config", overrides=normalize_overrides(overrides))
        apply_base(cfg, list(overrides))
        obj: Any = OmegaConf.to_object(cfg)
    except ChainError as exc:
        raise ConfigError([str(exc)]) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError([_explain(exc)]) from exc
    return validate(obj) if check else obj
