"""fusion_tuner: reproducible tuning sweeps for a fused ALIGNN + text-encoder property model.

The public API, imported lazily so that ``import fusion_tuner`` stays cheap and free of side
effects::

    compose_config(overrides)   conf/ + Hydra overrides -> typed Config      (fusion_tuner.compose)
    build_datamodule(cfg)       featurised, split, tokenised data            (fusion_tuner.data.module)
    build_model(cfg, info)      the fused model                              (fusion_tuner.models.builders)
    train(cfg, run_dir)         one run, every file of its directory         (fusion_tuner.training.run)
    load_run(run_dir)           a run with its model rebuilt from its files  (fusion_tuner.rundir)
    load_checkpoint(path)       a checkpoint read with weights_only=True     (fusion_tuner.checkpoint)
    predict(runs, structures)   predictions of one run or an ensemble         (fusion_tuner.inference)

The commands (``python -m fusion_tuner [COMMAND]``, ``fusion-tuner-*``) live in
:mod:`fusion_tuner.cli`; no module of the package shares its name with these functions (the file
``predict.py`` only runs as ``python -m fusion_tuner.predict`` and refuses to be imported).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "compose_config": "fusion_tuner.compose",
    "build_datamodule": "fusion_tuner.data.module",
    "build_model": "fusion_tuner.models.builders",
    "train": "fusion_tuner.training.run",
    "load_run": "fusion_tuner.rundir",
    "load_checkpoint": "fusion_tuner.checkpoint",
    "predict": "fusion_tuner.inference",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'fusion_tuner' has no attribute {name!r}")
