"""``python -m fusion_tuner --help``: every config group with its purpose, every option with
what it sets, and hints for command-line habits Hydra does not understand.

Group purposes come from the comments of ``conf/config.yaml``'s defaults list; an option's
description is the first comment line of its file, and "sets" lists the values in which it
differs from the schema's defaults (for experiments: the group options it selects and the keys
it sets).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from fusion_tuner.config import Config, flatten

HYDRA_FLAGS = (
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--cfg",
    "-c",
    "--resolve",
    "--package",
    "-p",
    "--run",
    "-r",
    "--multirun",
    "-m",
    "--shell-completion",
    "-sc",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--info",
    "-i",
)


def _group_purposes(conf: Path) -> dict[str, str]:
    out = {}
    for line in (conf / "config.yaml").read_text().splitlines():
        entry = line.strip()
        if entry.startswith("- ") and ":" in entry:
            name = entry[2:].split(":")[0].strip()
            out[name] = entry.split("#", 1)[1].strip() if "#" in entry else ""
    return out


def _description(path: Path, width: int = 90) -> str:
    """The file's leading comment, up to its first full stop (at most ``width`` characters)."""
    words = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        if "@package" not in text:
            words.append(text.lstrip("# ").strip())
    text = " ".join(words)
    end = text.find(". ")
    text = text[: end + 1] if end >= 0 else text
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _sets(group: str, path: Path, defaults: dict[str, Any]) -> list[str]:
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        return []
    if group == "search":  # the keys it searches (its other settings are the sweeper's)
        params = (raw.get("hydra") or {}).get("sweeper", {}).get("params") or {}
        return list(params)
    out = []
    for entry in raw.pop("defaults", []) or []:
        if isinstance(entry, dict):
            out += [f"{k.replace('override ', '').lstrip('/')}={v}" for k, v in entry.items()]
    prefix = "" if group in ("experiment", "phase") else f"{group}."
    for key, value in flatten(raw).items():
        full = prefix + key
        if full.startswith("hydra.") or full == "experiment_name":
            continue
        if str(defaults.get(full, object())).replace(" ", "").strip("[]") != str(value):
            out.append(f"{full}={value}")
    return out


def help_text(conf: Path) -> str:
    """The text of ``python -m fusion_tuner --help``."""
    defaults = flatten(asdict(Config()))
    purposes = _group_purposes(conf)
    lines = [
        "python -m fusion_tuner [-m] [GROUP=OPTION ...] [KEY=VALUE ...] [--cfg job]",
        "",
        "Train one run (or, with -m or +phase=N, a sweep) of the fused ALIGNN + text model.",
        "Write GROUP=OPTION to pick a config file, KEY=VALUE to set one field",
        "(e.g. regularization.graph_dropout=0.3); unknown keys are refused.",
        "",
    ]
    groups = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name != "hydra")
    for group in sorted(
        groups, key=lambda g: (g not in purposes, list(purposes).index(g) if g in purposes else 0)
    ):
        purpose = purposes.get(group) or {
            "phase": "plan phases (+phase=N runs a sweep)",
            "search": "Optuna searches over the plan's tiers (-m +search=tier1 runs one)",
        }.get(group, "")
        lines.append(f"{group}: {purpose}".rstrip(": "))
        for path in sorted((conf / group).glob("*.yaml")):
            sets = _sets(group, path, defaults)
            lines.append(f"  {path.stem:34s} {_description(path)}")
            if sets:
                verb = "searches" if group == "search" else "sets"
                lines.append(f"  {'':34s}   {verb} {', '.join(sets)}")
        lines.append("")
    lines += [
        "Launchers: hydra/launcher=local (parallel processes), hydra/launcher=slurm (job arrays).",
        "Searches: hydra/sweeper=optuna; hydra.sweeper.n_trials, n_jobs, sampler, pruner.name "
        "(conf/hydra/sweeper/optuna.yaml).",
        "Analysis: python -m fusion_tuner.analyze --help; sweep summary: python -m fusion_tuner.summary.",
        "Hydra's own options: python -m fusion_tuner --hydra-help",
    ]
    return "\n".join(lines)


def argparse_habit(args: list[str], groups: list[str], keys: list[str]) -> str | None:
    """A hint for ``--budget quick`` or ``--budget=quick`` (argparse habits), else None."""
    for i, arg in enumerate(args):
        if not arg.startswith("--") or arg.split("=")[0] in HYDRA_FLAGS:
            continue
        name, sep, value = arg[2:].partition("=")
        if name in groups or name in keys:
            if not sep and i + 1 < len(args) and not args[i + 1].startswith("-"):
                value = args[i + 1]
            return f"{arg} is not an option: did you mean {name}={value or '...'}?"
    return None
