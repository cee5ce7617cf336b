"""Where things are: the configs (``conf_dir``), the cache, and data paths by name.

The ground floor of the package (it imports nothing of fusion_tuner), so that the schema's checks,
the data layer and the sweep chain can all ask where a file is.

Data paths by name: ``sample://`` (bundled with the package) and ``data://`` (downloaded).

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
_PACKAGE = Path(__file__).resolve().parent
SAMPLES_DIR = _PACKAGE / "data" / "samples"

# An installed wheel or sdist carries the configs inside the package (pyproject maps
# fusion_tuner/conf to the repository's conf/); a checkout or an editable install keeps conf/
# beside the package, at the top of the repository.
CONF_CANDIDATES = (_PACKAGE / "conf", _PACKAGE.parent / "conf")


def _located() -> Path | None:
    return next((c for c in CONF_CANDIDATES if (c / "config.yaml").is_file()), None)


def conf_dir() -> Path:
    """The folder holding ``config.yaml``: inside the installed package, else the repository's
    ``conf/`` beside the package."""
    found = _located()
    if found is None:
        raise FileNotFoundError(
            "fusion_tuner's configs were not found (looked for config.yaml in "
            f"{', '.join(str(c) for c in CONF_CANDIDATES)}): reinstall the package "
            "(pip install fusion_tuner, or pip install -e . from its repository)"
        )
    return found


# what the Hydra app is decorated with (cli/train.py); an absolute path
CONF_DIR = _located() or CONF_CANDIDATES[-1]


def config_groups() -> list[str]:
    """The config groups of ``conf/`` (``dataset``, ``experiment``, ``phase`` ...)."""
    return sorted(p.name for p in conf_dir().iterdir() if p.is_dir() and p.name != "hydra")


def default_cache_root() -> Path:
    """``$FUSION_TUNER_CACHE_DIR``, else ``$XDG_CACHE_HOME/fusion_tuner``, else ``~/.cache/...``."""
    env = os.environ.get("FUSION_TUNER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fusion_tuner"


def data_root() -> Path:
    """Where ``download`` puts data sets: ``$FUSION_TUNER_DATA_DIR``, else ``<cache>/data``."""
    env = os.environ.get("FUSION_TUNER_DATA_DIR")
    if env:
        return Path(env).expanduser()
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
