"""A run's test predictions as a JARVIS-Leaderboard contribution.

Layout followed: ``usnistgov/jarvis_leaderboard`` at commit 57afc55f94c8 (2025-08-25), the
same commit as the benchmark files bundled as ``sample://jarvis_leaderboard_dft3d``. A
contribution is a folder ``jarvis_leaderboard/contributions/<name>/`` holding, per benchmark,
``AI-SinglePropertyPrediction-<property>-<dataset>-test-mae.csv.zip`` (one member, the same name
without ``.zip``, a CSV ``id,prediction`` with JARVIS ids), a ``metadata.json`` and a
``run.sh``. The leaderboard's ``rebuild.py`` reads ``model_name``, ``team_name``,
``date_submitted`` and ``project_url`` from ``metadata.json``, and its check
``check_metadata_info_exists`` wants ``author_email`` (with an ``@``), ``project_url``,
``git_url``, ``model_name``, ``team_name``, ``time_taken_seconds``, ``software_used`` and
``hardware_used``; contributions also carry ``language``, ``os`` and often
``database_version``, and ``time_taken_seconds`` maps each csv.zip to its seconds. The MAE is
computed by merging the CSV with the benchmark's test labels on ``id``.
"""

from __future__ import annotations

import datetime
import io
import json
import platform
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion_tuner import __version__
from fusion_tuner import paths as data_paths
from fusion_tuner.data import records
from fusion_tuner.errors import ExportError
from fusion_tuner.io import atomic_write_bytes, atomic_write_text, write_json
from fusion_tuner.rundir import COMPLETED, Run

# what check_metadata_info_exists (jarvis_leaderboard/rebuild.py) requires
REQUIRED_METADATA = (
    "author_email",
    "project_url",
    "git_url",
    "model_name",
    "team_name",
    "time_taken_seconds",
    "software_used",
    "hardware_used",
)
SOFTWARE = "fusion_tuner,torch,torch-geometric,transformers,jarvis-tools,hydra-core,numpy"


@dataclass
class Contributor:
    """Who submits, as ``metadata.json`` states it (None: left out, and reported)."""

    author_email: str | None = None
    team_name: str | None = None
    model_name: str | None = None
    project_url: str | None = None
    git_url: str | None = None
    hardware_used: str | None = None
    database_version: str | None = None


@dataclass
class Exported:
    """What :func:`export_leaderboard` wrote and measured."""

    csv_zip: Path
    metadata: Path
    run_sh: Path
    mae: float
    n: int
    missing_metadata: list[str]


def split_benchmark(benchmark: str) -> tuple[str, str]:
    """``dft_3d_optb88vdw_bandgap`` -> (``dft_3d``, ``optb88vdw_bandgap``): the longest JARVIS
    dataset name (``jarvis.db.figshare.get_db_info()``) the name starts with."""
    from jarvis.db.figshare import get_db_info

    names = [n for n in get_db_info() if benchmark.startswith(f"{n}_")]
    if not names:
        raise ExportError(
            f"--benchmark {benchmark!r} does not start with a JARVIS dataset name and a property "
            "(e.g. dft_3d_optb88vdw_bandgap)"
        )
    dataset = max(names, key=len)
    return dataset, benchmark[len(dataset) + 1 :]


def read_benchmark(path: Path) -> dict[str, dict[str, float]]:
    """A leaderboard benchmark file (``{"train": {id: value}, "val": ..., "test": ...}``,
    zipped or not) with its labels."""
    if not path.is_file():
        raise ExportError(f"benchmark file {path} not found (--split-file)")
    raw = json.loads(records._open_text(path)[0])
    if not isinstance(raw, dict) or not isinstance(raw.get("test"), dict):
        raise ExportError(
            f"{path} is not a leaderboard benchmark file: it needs a 'test' mapping of id to value"
        )
    return {
        k: {str(i): float(v) for i, v in raw[k].items()} for k in raw if isinstance(raw[k], dict)
    }


def _benchmark_file(run: Run, benchmark: str, given: str | Path | None) -> str:
    """The benchmark file as given or recorded (a path or a ``sample://`` / ``data://`` name)."""
    if given is not None:
        return str(given)
    recorded = run.config.dataset.split_file
    if recorded and benchmark in data_paths.resolve(recorded).name:
        return recorded
    raise ExportError(
        f"give --split-file: the benchmark's file {benchmark}.json.zip (in the leaderboard's "
        "jarvis_leaderboard/benchmarks/AI/SinglePropertyPrediction/, or "
        f"sample://jarvis_leaderboard_dft3d/SinglePropertyPrediction_{benchmark}.json.zip for the "
        "four dft_3d benchmarks bundled with the package)"
        + (f"; the run's dataset.split_file={recorded} is another benchmark's" if recorded else "")
    )


def _examples(ids: set[str]) -> str:
    return ", ".join(sorted(ids)[:3]) + (", ..." if len(ids) > 3 else "")


def _check_ids(run_ids: list[str], labels: dict[str, float], run: Run) -> dict[str, str]:
    """Run id -> JARVIS id; refuse unless the run's test ids are exactly the benchmark's."""
    jarvis_ids = {cid: records.canonical_id(cid) for cid in run_ids}
    if len(set(jarvis_ids.values())) != len(jarvis_ids):
        raise ExportError(f"run {run.name} has test ids that map to the same JARVIS id")
    have, want = set(jarvis_ids.values()), set(labels)
    missing, extra = want - have, have - want
    if missing or extra:
        raise ExportError(
            f"run {run.name}'s test ids are not the benchmark's test ids: {len(missing):,} of the "
            f"benchmark's {len(want):,} test ids are missing from the run"
            + (f" (e.g. {_examples(missing)})" if missing else "")
            + f", and {len(extra):,} of the run's {len(have):,} test ids are not in the "
            "benchmark's test split"
            + (f" (e.g. {_examples(extra)})" if extra else "")
            + ". Train with dataset.split_file=<the benchmark file> on data holding all its ids."
        )
    return jarvis_ids


def _check_labels(
    target: np.ndarray, run_ids: list[str], jarvis_ids: dict[str, str], labels: dict[str, float]
) -> None:
    """Refuse a run whose recorded test targets are not the benchmark's labels (another
    property, or other units)."""
    theirs = np.array([labels[jarvis_ids[i]] for i in run_ids])
    off = ~np.isclose(target, theirs, rtol=1e-4, atol=1e-4)  # the run's CSV keeps 6 digits
    if off.any():
        i = int(np.argmax(off))
        raise ExportError(
            f"{int(off.sum())} of the run's {len(run_ids)} test targets differ from the "
            f"benchmark's labels (e.g. {run_ids[i]}: {target[i]:.6g} vs {theirs[i]:.6g}): the run "
            "was trained on another property or in other units"
        )


def _metadata(run: Run, csv_name: str, who: Contributor) -> dict[str, Any]:
    m, cfg = run.metrics, run.config
    meta: dict[str, Any] = {
        "model_name": who.model_name or "fusion_tuner",
        "project_url": who.project_url,
        "date_submitted": datetime.date.today().strftime("%m-%d-%Y"),
        "author_email": who.author_email,
        "team_name": who.team_name,
        "time_taken_seconds": {csv_name: f"{m.get('wall_time_s', 0.0):.0f}"},
        "language": "python",
        "os": platform.system().lower(),
        "software_used": SOFTWARE,
        "hardware_used": who.hardware_used
        or f"{m.get('device', 'unknown')} (as recorded by the run)",
        "git_url": [who.git_url] if who.git_url else None,
        "database_version": who.database_version,
        "description": (
            f"ALIGNN crystal-graph encoder fused with a {cfg.text.model_name_or_path or 'tiny BERT'}"
            " text encoder, trained with fusion_tuner"
        ),
        "training": {
            "experiment": m.get("experiment"),
            "overrides": run.overrides,
            "seed": m.get("seed"),
            "dataset": {
                "source": cfg.dataset.source,
                "target": cfg.dataset.target,
                "split_file": cfg.dataset.split_file,
                "descriptions": cfg.dataset.descriptions,
            },
            "text": {
                "model": cfg.text.model_name_or_path or "tiny",
                "source": cfg.text.source,
                "describe_variant": cfg.text.describe_variant,
            },
            "split_sizes": {s: m.get(s, {}).get("n") for s in ("train", "val", "test")},
            "epochs_run": m.get("epochs_run"),
            "best_epoch": m.get("best_epoch"),
            "stop_reason": m.get("stop_reason"),
            "val_mae": m.get("val", {}).get("mae"),
            "test_mae": m.get("test", {}).get("mae"),
            "config_hash": m.get("config_hash"),
            "fusion_tuner_version": m.get("code_version", __version__),
        },
    }
    return {k: v for k, v in meta.items() if v is not None}


def _run_sh(run: Run, benchmark: str, split_file: str) -> str:
    overrides = " ".join(shlex.quote(o) for o in run.overrides)
    return (
        "#!/usr/bin/env bash\n"
        f"# How this contribution was made with fusion_tuner {__version__}: train, then export.\n"
        "set -euo pipefail\n"
        f"python -m fusion_tuner {overrides} hydra.run.dir=run\n"
        f"python -m fusion_tuner.export leaderboard run --benchmark {benchmark} "
        f"--split-file {shlex.quote(str(split_file))} --out .\n"
    )


def export_leaderboard(
    run: Run,
    benchmark: str,
    out: Path,
    split_file: str | Path | None = None,
    who: Contributor | None = None,
) -> Exported:
    """Write the leaderboard contribution of ``run``'s test predictions into ``out``.

    Raises:
        ExportError: the run is not completed, its test ids are not exactly the benchmark's
            (the counts of missing and extra ids are given), or its targets are not the
            benchmark's labels.
    """
    who = who or Contributor()
    if run.status != COMPLETED:
        raise ExportError(f"run {run.name} is {run.status}, not completed")
    preds = run.predictions("test")
    if preds is None:
        raise ExportError(f"{run.path} has no predictions_test.csv")
    dataset, prop = split_benchmark(benchmark)
    cfg = run.config
    if cfg.dataset.source == "jarvis" and cfg.dataset.target != prop:
        raise ExportError(
            f"run {run.name} predicts {cfg.dataset.target} (dataset.target), the benchmark "
            f"{benchmark} is {prop}"
        )
    bench_file = _benchmark_file(run, benchmark, split_file)
    labels = read_benchmark(data_paths.resolve(bench_file))["test"]
    jarvis_ids = _check_ids(preds.ids, labels, run)
    _check_labels(preds.target, preds.ids, jarvis_ids, labels)
    by_jarvis = {jarvis_ids[i]: p for i, p in zip(preds.ids, preds.prediction, strict=True)}
    order = list(labels)  # the benchmark's order
    prediction = np.array([by_jarvis[j] for j in order])
    mae = float(np.mean(np.abs(prediction - np.array([labels[j] for j in order]))))

    name = f"AI-SinglePropertyPrediction-{prop}-{dataset}-test-mae.csv"
    buf = io.StringIO()
    buf.write("id,prediction\n")
    buf.writelines(f"{j},{p:.6g}\n" for j, p in zip(order, prediction, strict=True))
    out.mkdir(parents=True, exist_ok=True)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, buf.getvalue())
    csv_zip = out / f"{name}.zip"
    atomic_write_bytes(zipped.getvalue(), csv_zip)
    meta = _metadata(run, csv_zip.name, who)
    write_json(out / "metadata.json", meta)
    atomic_write_text(_run_sh(run, benchmark, bench_file), out / "run.sh")
    (out / "run.sh").chmod(0o755)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if "@" not in meta.get("author_email", "@"):
        missing.append("author_email (needs an @)")
    return Exported(csv_zip, out / "metadata.json", out / "run.sh", mae, len(order), missing)
