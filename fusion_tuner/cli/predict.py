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
from fusion_tuner.words import plural


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
    p.add_argument(
        "--out",
        required=True,
        help="the CSV to write (a folder: its predictions.csv); never a run's own record",
    )
    p.add_argument(
        "--descriptions",
        help="texts for the new crystals (CSV id,description or JSON), when the runs' texts "
        "came from a file or their dataset",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--max-edges",
        type=int,
        default=None,
        help="bonds plus bond angles per batch, which bound the memory (default 1,000,000); "
        "a crystal above it alone is skipped with the reason",
    )
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "none"))
    p.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="let an ALIGNN folder's id_prop.csv name absolute paths or files outside the "
        "folder (skipped otherwise)",
    )
    return p


# What a run directory holds that predict must never overwrite (besides .hydra/, tokenizer/).
RUN_RECORDS = {
    "metrics.json",
    "best_model.pt",
    "last.pt",
    "last.prev.pt",
    "history.csv",
    "split.json",
    "ids_train_val_test.json",
    "data_report.json",
    "train.log",
    "curves.png",
    "predictions_train.csv",
    "predictions_val.csv",
    "predictions_test.csv",
}


def _out_file(raw: str) -> Path:
    """The CSV ``--out`` names: a folder (existing, or given with a trailing ``/``) gets
    ``predictions.csv`` inside it.

    Raises:
        PredictError: a path that is a run's own record (``metrics.json``, a checkpoint, its
            recorded predictions, anything in ``.hydra/`` or ``tokenizer/``), or not a file.
    """
    from fusion_tuner.errors import PredictError
    from fusion_tuner.rundir import RunDir

    out = Path(raw).expanduser()
    if out.is_dir() or raw.endswith(("/", "\\")):
        out = out / "predictions.csv"
    for folder in (out.parent, out.parent.parent):
        files = RunDir(folder)
        if not (files.is_run() or files.best_checkpoint.is_file()):
            continue
        inside = out.parent.name in (".hydra", "tokenizer") and folder == out.parent.parent
        if (folder == out.parent and out.name in RUN_RECORDS) or inside:
            raise PredictError(
                f"--out {raw} would overwrite the run record {out} of the run in {folder}; "
                "write the predictions elsewhere, e.g. --out "
                f"{folder / 'predictions_new.csv'}"
            )
    if out.exists() and not out.is_file():
        raise PredictError(f"--out {raw}: {out} exists and is not a file")
    return out


def _fmt(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.batch_size < 1:
        print(f"error: --batch-size={args.batch_size} must be >= 1", file=sys.stderr)
        return 2
    if args.max_edges is not None and args.max_edges < 1:
        print(f"error: --max-edges={args.max_edges} must be >= 1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fusion_tuner.inference import predict
    from fusion_tuner.io import write_csv

    try:
        out = _out_file(str(args.out))
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        table = predict(
            args.runs,
            args.structures,
            descriptions=args.descriptions,
            device=args.device,
            batch_size=args.batch_size,
            progress=args.progress,
            allow_outside_paths=args.allow_outside_paths,
            **({"max_edges": args.max_edges} if args.max_edges is not None else {}),
        )
    except (PredictError, RunError, CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for where, why in table.skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    if not table.rows:
        print(f"error: nothing could be predicted ({len(table.skipped)} skipped)", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, table.columns, ({k: _fmt(v) for k, v in r.items()} for r in table))
    if len(table.members) > 1:
        for i, member in enumerate(table.members, start=1):
            print(f"member_{i}: {member}")
    print(
        f"predicted {table.target} for {plural(len(table), 'crystal')}"
        + (f", skipped {len(table.skipped)}" if table.skipped else "")
        + f": wrote {out}"
    )
    if table.mae is not None:
        print(f"MAE against the inputs' targets: {table.mae:.4g} (n={len(table)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
