"""``python -m fusion_tuner.summary SWEEP_DIR [--threshold 0.02]``: (re)write a sweep's summary
(``summary.csv``, ``summary.md``, ``summary.png`` and ``summary.json``, which ``base_sweep=``
reads; an Optuna search's: ``search_summary.md`` and its plots)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion_tuner.markdown import plain
from fusion_tuner.sweeps.summary_files import write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusion_tuner.summary", description=plain(__doc__)
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (outputs/multirun/...)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.02,
        help="relative change of validation MAE that counts as down/up (default 0.02)",
    )
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: sweep directory {args.sweep_dir} not found", file=sys.stderr)
        return 2
    from fusion_tuner.search import is_search_dir

    if is_search_dir(args.sweep_dir):  # an Optuna search: its own summary
        from fusion_tuner.search.search_summary import SUMMARY_MD, write_search_summary

        write_search_summary(args.sweep_dir)
        print((args.sweep_dir / SUMMARY_MD).read_text())
        print(f"wrote {SUMMARY_MD}, search_summary.json and the plots in {args.sweep_dir}")
        return 0
    summary = write_summary(args.sweep_dir, args.threshold)
    print((args.sweep_dir / "summary.md").read_text())
    bad = sum(r["status"] != "completed" for r in summary.rows)
    print(
        f"wrote summary.csv, summary.md, summary.png, summary.json in {args.sweep_dir} "
        f"({bad} run(s) not completed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
