"""Composing a config without a Hydra app: ``conf/`` plus overrides, as typed dataclasses.

Example::

    from fusion_tuner import compose_config
    cfg = compose_config(["budget=quick", "regularization=aggressive", "batch.batch_size=32"])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from typing import Any

from fusion_tuner.config import Config, register_configs, validate
from fusion_tuner.errors import ConfigError
from fusion_tuner.paths import conf_dir, config_groups


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


def schema_keys() -> list[str]:
    """Every settable dotted key of the schema (``regularization.graph_dropout`` ...)."""
    out: list[str] = []
    for f in fields(Config):
        factory = f.default_factory  # type: ignore[misc]
        if is_dataclass(factory):
            out += [f"{f.name}.{g.name}" for g in fields(factory)]  # type: ignore[arg-type]
        else:
            out.append(f.name)
    return out


def check_override_keys(overrides: Sequence[str]) -> None:
    """Refuse overrides of keys the schema does not have, with or without ``+``/``++``.

    Hydra itself refuses an unknown key written without ``+`` but suggests adding one, and a
    key added with ``+`` is then silently dropped when the config becomes typed dataclasses.
    Group choices (``dataset=jarvis``) and ``hydra.*`` / ``hydra/...`` overrides are left to
    Hydra, which checks them.

    Raises:
        ConfigError: naming each unknown key and the closest valid ones.
    """
    from difflib import get_close_matches

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return  # a syntax error: Hydra reports it with its own message
    valid, groups = schema_keys(), config_groups()
    sections = {k.split(".")[0] for k in valid}
    problems = []
    for o in parsed:
        key = o.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")) or o.package is not None:
            continue
        if key in groups or key in valid or "/" in key:
            continue
        if key in sections and (o.is_delete() or o.value() is None):
            continue
        candidates = valid if "." in key else groups + [k for k in valid if "." not in k]
        close = get_close_matches(key, candidates, n=3, cutoff=0.6)
        section = key.split(".")[0]
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        if section in sections and "." in key:
            hint += f"Valid keys of {section}: " + ", ".join(
                k.split(".", 1)[1] for k in valid if k.startswith(f"{section}.")
            )
        elif not close:
            hint = f"valid groups: {', '.join(groups)}; top-level keys: " + ", ".join(
                k for k in valid if "." not in k
            )
        added = (
            " (adding it with '+' would only make the run ignore it)"
            if o.is_add() or o.is_force_add()
            else ""
        )
        problems.append(f"{o.input_line}: unknown key {key!r}{added}; {hint}")
    if problems:
        raise ConfigError(problems)


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
    overrides = normalize_overrides(overrides)
    check_override_keys(overrides)
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(conf_dir())):
            cfg = compose(config_name="config", overrides=overrides)
        apply_base(cfg, list(overrides))
        obj: Any = OmegaConf.to_object(cfg)
    except ChainError as exc:
        raise ConfigError([str(exc)]) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError([_explain(exc)]) from exc
    return validate(obj) if check else obj
