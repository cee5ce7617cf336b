"""Wall time of one whole run (data, training, evaluation, predictions, plots), eager and with
``trainer.compile=true``, optionally against another checkout of the project.

Usage: python bench/whole_run.py [--source DIR] [--out DIR] [--json FILE] [-- OVERRIDES...]

Runs ``python -m fusion_tuner budget=quick random_seed=42`` (plus OVERRIDES), one process at a
time, in this order:
  (before)        the same command from ``--source`` (another checkout, e.g. an older commit:
                  ``git worktree add /tmp/old <commit>``), when given
  (eager)         this checkout, as configured
  (compiled_cold) this checkout with ``trainer.compile=true`` and an empty inductor cache
                  (a fresh ``TORCHINDUCTOR_CACHE_DIR``)
  (compiled_warm) the same again, with the cache the cold run left
and prints each wall time (the process, from start to exit), its ratio to the first, the
training throughput and the validation MAE of ``metrics.json``. Run it on a quiet machine: the
variants run in sequence, so load changes hit them unevenly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ["budget=quick", "random_seed=42"]


def one(name: str, source: Path, out: Path, overrides: list[str], env: dict[str, str]) -> dict:
    run_dir = out / name
    env = os.environ | {"PYTHONPATH": str(source)} | env
    args = [sys.executable, "-m", "fusion_tuner", *COMMAND, *overrides, f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=source, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "variant": name,
        "source": str(source),
        "overrides": [*COMMAND, *overrides],
        "wall_s": round(wall, 1),
        "train_crystals_per_s": round(metrics["train_crystals_per_s"], 2),
        "val_mae": metrics["val"]["mae"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="another checkout to time first")
    parser.add_argument("--out", type=Path, help="run directories (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("overrides", nargs="*", help="more overrides for every run")
    a = parser.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="whole_run_"))
    cache = Path(tempfile.mkdtemp(prefix="inductor_cache_"))
    plan = []
    if a.source:
        plan.append(("before", a.source.resolve(), [], {}))
    compiled = ["trainer.compile=true"]
    inductor = {"TORCHINDUCTOR_CACHE_DIR": str(cache)}
    plan += [
        ("eager", ROOT, [], {}),
        ("compiled_cold", ROOT, compiled, inductor),
        ("compiled_warm", ROOT, compiled, inductor),
    ]
    rows = []
    for name, source, extra, env in plan:
        rows.append(one(name, source, out, [*a.overrides, *extra], env))
        first = rows[0]["wall_s"]
        r = rows[-1]
        print(
            f"{name:14s} {r['wall_s']:7.1f} s  {first / r['wall_s']:.2f}x faster than "
            f"{rows[0]['variant']}  {r['train_crystals_per_s']:.1f} crystals/s  "
            f"val MAE {r['val_mae']:.5f}",
            flush=True,
        )
    if a.json:  # whole or not at all: a temporary file, then a rename
        tmp = a.json.with_name(f".{a.json.name}.tmp")
        tmp.write_text(json.dumps({"command": COMMAND, "runs": rows}, indent=2) + "\n")
        tmp.replace(a.json)


if __name__ == "__main__":
    main()
