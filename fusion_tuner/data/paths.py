"""Data paths by name: ``sample://`` (bundled with the package) and ``data://`` (downloaded).

Every data path the configs and commands take (``dataset.path``, ``dataset.root``,
``dataset.jarvis_dir``, ``dataset.descriptions``, ``dataset.split_file``, ``predict
--structures``, ``export --split-file``) may be written as

* ``sample://NAME[/FILE]``: a real sample shipped inside the package
  (``fusion_tuner/data/samples/NAME``; see its README.md for the sources, licences and
  citations), so it works from a wheel install in any directory;
* ``data://NAME[/FILE]``: a data set that ``python -m fusion_tuner.data download NAME`` placed
  in the data folder (``$FUSION_TUNER_DATA_DIR``, else ``<cache>/data``);
* anything else: a plain path (``~`` expanded; relative to the working directory).
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_SCHEME = "sample://"
DATA_SCHEME = "data://"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def data_root() -> Path:
    """Where ``download`` puts data sets: ``$FUSION_TUNER_DATA_DIR``, else ``<cache>/data``."""
    env = os.environ.get("FUSION_TUNER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    from fusion_tuner.data.records import default_cache_root

    return default_cache_root() / "data"


def sample_names() -> list[str]:
    """The bundled samples (folders of ``fusion_tuner/data/samples``)."""
    return sorted(p.name for p in SAMPLES_DIR.iterdir() if p.is_dir())


def resolve(value: str | os.PathLike[str]) -> Path:
    """The local path that ``value`` names (see the module docstring); never checks existence."""
    text = os.fspath(value)
    if text.startswith(SAMPLE_SCHEME):
        return SAMPLES_DIR / text[len(SAMPLE_SCHEME) :].strip("/")
    if text.startswith(DATA_SCHEME):
        return data_root() / text[len(DATA_SCHEME) :].strip("/")
    return Path(text).expanduser()


def explain_missing(value: str | os.PathLike[str]) -> str:
    """A hint for a named path that does not exist ('' for a plain path)."""
    text = os.fspath(value)
    if text.startswith(SAMPLE_SCHEME):
        name = text[len(SAMPLE_SCHEME) :].strip("/").split("/", 1)[0]
        return f"; the bundled samples are {', '.join(sample_names())}" + (
            "" if name in sample_names() else f" (no sample {name!r})"
        )
    if text.startswith(DATA_SCHEME):
        name = text[len(DATA_SCHEME) :].strip("/").split("/", 1)[0]
        return (
            f"; download it first: python -m fusion_tuner.data download {name} "
            f"(into {data_root()}; `python -m fusion_tuner.data list` shows what is there)"
        )
    return ""
