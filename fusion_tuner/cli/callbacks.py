"""Checks that run inside Hydra before it writes anything: :class:`ValidateCallback`."""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback

from fusion_tuner.config import Config, dataset_file_problems, init_from_problem, validate
from fusion_tuner.errors import ConfigError


def _typed_config(config: Any) -> Config | None:
    """The typed config of a composed Hydra config (without its ``hydra`` node), or None."""
    from omegaconf import OmegaConf, open_dict, read_write
    from omegaconf.errors import OmegaConfBaseException

    cfg = config.copy()
    with read_write(cfg), open_dict(cfg):
        cfg.pop("hydra", None)
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException:
        return None  # the task function meets the same error and reports it in full


def _stop(message: str) -> None:
    # Hydra turns a callback's exceptions into warnings; SystemExit is not one of them
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ValidateCallback(Callback):
    """Hydra callback: check the config before Hydra creates a run or sweep directory.

    A single run is validated in full (:func:`validate`). A sweep's base config is checked for
    missing data files and a missing ``model.init_from`` only, and only for keys the sweep does
    not vary (a grid point may fix anything else; ``train`` validates each run and records a
    bad one as failed). Listed before ``sweep_summary`` under ``hydra.callbacks`` in
    ``conf/config.yaml``.
    """

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        typed = _typed_config(config)
        if typed is not None:
            try:
                validate(typed)
            except ConfigError as exc:
                _stop(str(exc))
            problem = _jarvis_target_problem(typed)
            if problem:
                _stop(problem)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        typed = _typed_config(config)
        swept = _swept_keys(config.hydra)
        if typed is None or swept is None:
            return
        problems = [
            msg
            for key, msg in dataset_file_problems(typed.dataset)
            if "dataset" not in swept and f"dataset.{key}" not in swept
        ]
        missing = init_from_problem(typed.model)
        if missing and not swept & {"model", "model.init_from"}:
            problems.append(missing)
        if problems:
            _stop(str(ConfigError(problems)))


def _jarvis_target_problem(cfg: Config) -> str | None:
    """A wrong ``dataset.target`` of a JARVIS data set whose keys an earlier load remembered
    (refused before the run directory exists; else the data load refuses it)."""
    d = cfg.dataset
    if d.source != "jarvis":
        return None
    from fusion_tuner.data.records import jarvis_store_dir, target_problem

    try:
        return target_problem(d.name, jarvis_store_dir(d.jarvis_dir), d.target)
    except Exception:  # an unresolvable folder: the data load reports it in full
        return None


def _swept_keys(hydra_cfg: Any) -> set[str] | None:
    """Keys a multirun varies (sweep overrides and every ``hydra.sweeper.params`` key)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    params = hydra_cfg.sweeper.get("params") or {}
    try:
        parsed = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
    except HydraException:
        return None
    keys = {str(k).lstrip("+~") for k in params}
    keys |= {o.key_or_group.lstrip("+~") for o in parsed if o.is_sweep_override()}
    return keys
