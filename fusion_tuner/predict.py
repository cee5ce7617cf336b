"""``python -m fusion_tuner.predict --runs RUN [RUN ...] --structures PATH [PATH ...] --out CSV``

Predict a property of new crystals with one trained run (CSV ``id, prediction``) or a seed
ensemble of runs (``id, mean, std, member_1..k``), each run exactly as it was trained (see
:mod:`fusion_tuner.inference.predictor`). A PATH is a structure file (POSCAR / CIF), a folder
of them, an ALIGNN folder with ``id_prop.csv`` (its targets are carried into the CSV and the MAE
is printed) or a table with a structure column. Unreadable inputs are listed with their reason
and skipped; the exit status is 1 when nothing could be predicted, 2 for unusable runs or
arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fusion_tuner.errors import CheckpointError, DataError, PredictError, RunError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fusion_tuner.predict", description=__doc__.split("\n\n")[1]
    )
    p.add_argument(
        "--runs", nargs="+", required=True, help="run directories or checkpoints (an ensemble)"
    )
    p.add_argument(
        "--structures",
        nargs="+",
        required=True,
        help="structure files, folders, ALIGNN folders (id_prop.csv) or tables",
    )
    p.add_argument("--out", type=Path, required=True, help="the CSV to write")
    p.add_argument(
        "--descriptions",
        type=Path,
        help="texts for the new crystals (CSV id,description or JSON), when the runs' texts "
        "came from a file or their dataset",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "none"))
    p.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="let an ALIGNN folder's id_prop.csv name absolute paths or files outside the "
        "folder (skipped otherwise)",
    )
    return p


def _fmt(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        print(f"error: --batch-size={args.batch_size} must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_tuner.inference import predict
    from fusion_tuner.io import write_csv

    try:
        table = predict(
            args.runs,
            args.structures,
            descriptions=args.descriptions,
            device=args.device,
            batch_size=args.batch_size,
            progress=args.progress,
            allow_outside_paths=args.allow_outside_paths,
        )
    except (PredictError, RunError, CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for where, why in table.skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    if not table.rows:
        print(f"error: nothing could be predicted ({len(table.skipped)} skipped)", file=sys.stderr)
        return 1
    write_csv(args.out, table.columns, ({k: _fmt(v) for k, v in r.items()} for r in table))
    if len(table.members) > 1:
        for i, member in enumerate(table.members, start=1):
            print(f"member_{i}: {member}")
    print(
        f"predicted {table.target} for {len(table)} crystals"
        + (f", skipped {len(table.skipped)}" if table.skipped else "")
        + f": wrote {args.out}"
    )
    if table.mae is not None:
        print(f"MAE against the inputs' targets: {table.mae:.4g} (n={len(table)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
