"""Phases that chain: ``base_sweep=DIR`` starts a run, or every run of a sweep, from what an
earlier sweep found.

    python -m fusion_tuner +phase=2 -m base_sweep=outputs/multirun/phase1/<time>

**What is read.** Every sweep's summary writes ``summary.json`` with a ``next_base``: the
sweep's winning experiment (the ✅ down experiment with the lowest mean validation MAE) and its
settings as dotted keys against conf/'s original baseline (cumulative: a chained sweep's winner
carries its own base's keys too), or, without a ✅ winner, the configuration the sweep itself
started from, with a note that says so.

**How it is applied.** When a run is composed (:func:`apply_base`, called by the CLI for every
run of a sweep and by :func:`fusion_tuner.compose_config`), each of those keys is set on the
composed config *unless the run sets it itself*: its experiment (the values in
``conf/experiment/<name>.yaml`` and in the group options it selects, see
:func:`experiment_settings`) or its command line (a key, or a whole group such as
``regularization=aggressive``). So the new phase's baseline is the previous winner, and each new
experiment is applied on top of it (where both set a key, the new experiment's value wins and
the key is listed as superseded). The new sweep's command line still decides dataset, budget
and seeds: the base carries only what experiments changed.

**What is recorded.** The run's ``base`` node (``sweep``, ``winner``, ``overrides``,
``superseded``), which ``.hydra/config.yaml`` (rewritten with the values the run computes with),
the checkpoint and the W&B config carry; the new sweep's ``summary.json`` repeats it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from fusion_tuner.config import flatten

SUMMARY_JSON = "summary.json"
# Keys of a job's command line that never supersede base keys.
NOT_SETTINGS = ("random_seed", "base_sweep", "phase", "experiment_name")


class ChainError(ValueError):
    """A base sweep that cannot be chained from; the message names the directory and the fix."""


class NextBase(NamedTuple):
    """What a sweep hands to the next phase (``summary.json``'s ``next_base``)."""

    sweep: str
    winner: str | None
    overrides: dict[str, Any]
    note: str


def read_next_base(sweep_dir: str | Path) -> NextBase:
    """The starting point a sweep directory hands on (its ``summary.json``'s ``next_base``).

    Raises:
        ChainError: no such directory, no ``summary.json`` (with the command that writes it),
            or a summary without ``next_base``.
    """
    path = Path(sweep_dir).expanduser()
    if not path.is_dir():
        raise ChainError(f"base_sweep={sweep_dir}: no such directory")
    file = path / SUMMARY_JSON
    if not file.is_file():
        raise ChainError(
            f"base_sweep={sweep_dir}: {file} not found; write it with "
            f"`python -m fusion_tuner.summary {sweep_dir}` (every sweep's summary writes it)"
        )
    try:
        nb = json.loads(file.read_text())["next_base"]
        return NextBase(
            str(path.resolve()), nb["winner"], dict(nb["overrides"]), str(nb.get("note", ""))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ChainError(
            f"base_sweep={sweep_dir}: {file} has no readable next_base ({exc}); rewrite it with "
            f"`python -m fusion_tuner.summary {sweep_dir}`"
        ) from exc


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ChainError(f"{path} not found")
    return yaml.safe_load(path.read_text()) or {}


def experiment_settings(name: str) -> dict[str, Any]:
    """The dotted keys an experiment sets, with their values: those in
    ``conf/experiment/<name>.yaml`` and those of every group option it selects with
    ``override /group: option`` (``tests/unit/test_sweep_chain.py`` checks them against Hydra's
    composition for every experiment)."""
    from fusion_tuner.paths import conf_dir

    conf = conf_dir()
    raw = _load_yaml(conf / "experiment" / f"{name}.yaml")
    out: dict[str, Any] = {}
    for entry in raw.pop("defaults", None) or []:
        if entry == "_self_":
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ChainError(
                f"conf/experiment/{name}.yaml: defaults entry {entry!r} is not of the form "
                "'override /group: option'"
            )
        ((key, option),) = entry.items()
        group = key.removeprefix("override").strip().strip("/")
        values = _load_yaml(conf / group / f"{option}.yaml")
        if "defaults" in values:
            raise ChainError(f"conf/{group}/{option}.yaml has its own defaults list: not supported")
        out.update(flatten(values, f"{group}."))
    raw.pop("experiment_name", None)
    out.update(flatten(raw))
    return out


def owned_keys(task_overrides: list[str]) -> list[str]:
    """The keys (or whole groups) a job sets itself: its experiment's and its command line's."""
    owned: list[str] = []
    for o in task_overrides:
        key, sep, value = o.partition("=")
        key = key.lstrip("+~")
        if not sep or key in NOT_SETTINGS or key.startswith("hydra"):
            continue
        if key == "experiment":
            value = value.strip("'\"")
            if value and value != "null":
                owned += list(experiment_settings(value))
        else:
            owned.append(key)
    return owned


def is_owned(key: str, owned: list[str]) -> bool:
    return any(key == o or key.startswith(f"{o}.") for o in owned)


def apply_base(cfg: Any, task_overrides: list[str]) -> NextBase | None:
    """Apply ``cfg.base_sweep``'s starting point to a composed ``DictConfig`` in place and
    record it in ``cfg.base`` (see the module docstring). No-op without ``base_sweep``.

    Args:
        cfg: the composed config (a ``DictConfig`` of the schema).
        task_overrides: the job's command-line overrides (``experiment=...`` included).

    Returns:
        What was read, or None without ``base_sweep``.

    Raises:
        ChainError: an unreadable base sweep, or a base key the schema does not know.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not cfg.base_sweep:
        return None
    nb = read_next_base(cfg.base_sweep)
    owned = owned_keys(task_overrides)
    superseded = []
    for key, value in nb.overrides.items():
        if is_owned(key, owned):
            superseded.append(key)
            continue
        if OmegaConf.select(cfg, key, default="__absent__") == "__absent__":
            raise ChainError(
                f"base_sweep={cfg.base_sweep}: its winner sets {key}, which this config does not "
                "have (a sweep of an older version?); rewrite its summary or start without it"
            )
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except OmegaConfBaseException as exc:
            raise ChainError(
                f"base_sweep={cfg.base_sweep}: cannot set {key}={value!r}: {exc}"
            ) from exc
    cfg.base.sweep = nb.sweep
    cfg.base.winner = nb.winner
    cfg.base.overrides = nb.overrides
    cfg.base.superseded = superseded
    return nb


def override_value(value: Any) -> str:
    """A value as Hydra's command line writes it (``0.0005``, ``true``, ``'2,3'``, ``[1,2]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value)
    if not text or any(c in text for c in ",[]{}()=' \"\\:"):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def as_overrides(values: dict[str, Any]) -> list[str]:
    """``{"a.b": v}`` as command-line overrides ``["a.b=v"]`` (the winner without chaining)."""
    return [f"{k}={override_value(v)}" for k, v in values.items()]
