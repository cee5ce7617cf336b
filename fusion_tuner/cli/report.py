"""``python -m fusion_tuner.report PATH [PATH ...] [--out DIR]``: one report for the whole plan.

PATH is a folder of sweeps (``outputs/multirun/``) or sweep directories. Writes
``report.html`` (self-contained, opens offline), ``report.md`` (its Markdown twin),
``report.json`` and the figures into ``--out`` (default ``<PATH>/plan_report/``). See
:mod:`fusion_tuner.sweeps.plan_report` for what it holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion_tuner.words import plural


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_tuner.report", description=__doc__)
    parser.add_argument("paths", type=Path, nargs="+", help="sweep directories or a folder of them")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="relative change of validation MAE that counts (default: each sweep's own)",
    )
    parser.add_argument("--no-cka", action="store_true", help="skip the CKA criteria")
    parser.add_argument("--device", default="auto", help="for CKA: auto, cpu, cuda, ...")
    args = parser.parse_args(argv)
    from fusion_tuner.errors import RunError
    from fusion_tuner.sweeps.plan_report import ReportError, build_report

    try:
        numbers = build_report(args.paths, args.out, args.threshold, not args.no_cka, args.device)
    except (ReportError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(numbers["out"])
    for c in numbers["criteria"]:
        print(f"{c['criterion']}: {c['value']} (target {c['target']}) {c['status']}")
    print(
        f"wrote {out / 'report.html'} and {out / 'report.md'} ({plural(len(numbers['sweeps']), 'sweep')})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
