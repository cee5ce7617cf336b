"""``python -m fusion_tuner.analyze <command> ...``: trustworthy analysis of trained runs.

Every command reads run directories or checkpoints only (no Hydra app, no W&B), works on CPU or
GPU, writes a JSON of its numbers, PNG figures and a Markdown report into ``--out DIR``, and
prints its key table. Commands: ``curves``, ``cka``, ``compare``, ``ensemble``, ``data``,
``text-ablation``, ``attention``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion_tuner.errors import AnalysisError, CheckpointError, RunError
from fusion_tuner.markdown import plain


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fusion_tuner.analyze", description=plain(__doc__.split("\n\n")[0])
    )
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("curves", help="overlay training curves of several runs")
    c.add_argument("runs", nargs="+", help="run directories")
    c.add_argument("--names", nargs="+", help="labels, one per run (default: directory names)")

    k = sub.add_parser(
        "cka", help="CKA between every stage of two models on run A's recorded split"
    )
    k.add_argument(
        "--runs", nargs=2, required=True, metavar=("A", "B"), help="run directories or checkpoints"
    )
    k.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"))
    k.add_argument("--split", default="test", choices=("train", "val", "test"))
    k.add_argument("--rbf", action="store_true", help="also RBF-kernel CKA (n <= 6000)")
    k.add_argument("--device", default="auto")

    m = sub.add_parser(
        "compare", help="two runs on the same recorded splits, with paired statistics"
    )
    m.add_argument(
        "--runs",
        nargs=2,
        required=True,
        metavar=("A", "B"),
        help="two runs; or two seed sets, each a comma-separated list of run directories of one "
        "configuration (the interval then comes from the seed-level results)",
    )
    m.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"))
    m.add_argument("--device", default="auto")

    e = sub.add_parser("ensemble", help="average the test predictions of several runs (e.g. seeds)")
    e.add_argument("runs", nargs="*", help="run directories")
    e.add_argument(
        "--glob", help="a pattern of run directories, e.g. 'outputs/multirun/ens/*-seed*'"
    )

    d = sub.add_parser("data", help="the plan's data check on a run's recorded split")
    d.add_argument("run", help="a run directory")

    t = sub.add_parser(
        "text-ablation",
        help="test MAE of fused runs with their texts as given, permuted across crystals, blank",
    )
    t.add_argument("--runs", nargs="+", required=True, help="fused run directories or checkpoints")
    t.add_argument("--permutations", type=int, default=5, help="permutations averaged (default 5)")
    t.add_argument("--seed", type=int, default=0, help="seed of the permutations and bootstrap")
    t.add_argument("--device", default="auto")

    a = sub.add_parser(
        "attention", help="atom <-> token attention weights of a fused run, per crystal"
    )
    a.add_argument("--runs", nargs=1, required=True, metavar="RUN", help="a fused run directory")
    a.add_argument("--ids", nargs="+", required=True, help="crystal ids (as in split.json)")
    a.add_argument("--device", default="auto")

    for sp in (c, k, m, e, d, t, a):
        sp.add_argument(
            "--out", type=Path, required=True, help="folder for the JSON, figures and report"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fusion_tuner.analysis.cka_estimators import CKAError

    try:
        if args.command == "curves":
            from fusion_tuner.analysis.curves import run_curves

            run_curves(args.runs, args.out, args.names)
        elif args.command == "cka":
            from fusion_tuner.analysis.cka import run_cka

            run_cka(args.runs, args.out, args.names, args.split, args.rbf, args.device)
        elif args.command == "compare":
            from fusion_tuner.analysis.compare import run_compare

            run_compare(args.runs, args.out, args.names, args.device)
        elif args.command == "ensemble":
            from fusion_tuner.analysis.ensemble import run_ensemble

            run_ensemble(args.runs, args.out, args.glob)
        elif args.command == "text-ablation":
            from fusion_tuner.analysis.text_ablation import run_text_ablation

            run_text_ablation(args.runs, args.out, args.device, args.permutations, args.seed)
        elif args.command == "attention":
            from fusion_tuner.analysis.attention import run_attention

            run_attention(args.runs[0], args.ids, args.out, args.device)
        else:
            from fusion_tuner.analysis.data_check import run_data_check

            run_data_check(args.run, args.out)
    except (AnalysisError, CKAError, CheckpointError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
