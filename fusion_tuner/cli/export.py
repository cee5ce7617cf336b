"""``python -m fusion_tuner.export leaderboard RUN_DIR --benchmark NAME --out DIR``

Write a run's test predictions as a JARVIS-Leaderboard contribution (the csv.zip of
``id,prediction``, ``metadata.json`` and ``run.sh``; see
:mod:`fusion_tuner.exports.leaderboard`). Refused, with the counts of missing and extra ids,
when the run's test ids are not exactly the benchmark's; prints the MAE against the benchmark
file's labels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion_tuner.errors import CheckpointError, ExportError, RunError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fusion_tuner.export", description=__doc__.split("\n\n")[1]
    )
    sub = p.add_subparsers(dest="command", required=True)
    lb = sub.add_parser("leaderboard", help="a JARVIS-Leaderboard contribution of the test split")
    lb.add_argument("run", help="a completed run directory")
    lb.add_argument(
        "--benchmark", required=True, help="<dataset>_<property>, e.g. dft_3d_optb88vdw_bandgap"
    )
    lb.add_argument("--out", type=Path, required=True, help="the contribution folder")
    lb.add_argument(
        "--split-file",
        help="the benchmark's JSON(.zip) with its labels, a path or sample://... (default: the "
        "run's dataset.split_file when it is this benchmark's)",
    )
    for key, text in (
        ("author-email", "the submitter's e-mail (required by the leaderboard)"),
        ("team-name", "the team (required by the leaderboard)"),
        ("model-name", "default: fusion_tuner"),
        ("project-url", "a paper or project page (required by the leaderboard)"),
        ("git-url", "the code's repository (required by the leaderboard)"),
        ("hardware-used", "default: the device the run recorded"),
        ("database-version", "e.g. the JARVIS dataset version the run trained on"),
    ):
        lb.add_argument(f"--{key}", help=text)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fusion_tuner.exports.leaderboard import Contributor, export_leaderboard
    from fusion_tuner.rundir import locate

    who = Contributor(
        author_email=args.author_email,
        team_name=args.team_name,
        model_name=args.model_name,
        project_url=args.project_url,
        git_url=args.git_url,
        hardware_used=args.hardware_used,
        database_version=args.database_version,
    )
    try:
        done = export_leaderboard(locate(args.run), args.benchmark, args.out, args.split_file, who)
    except (ExportError, RunError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {done.csv_zip}, {done.metadata.name}, {done.run_sh.name}")
    print(f"test MAE against {args.benchmark}'s labels: {done.mae:.4g} (n={done.n})")
    if done.missing_metadata:
        print(
            "before submitting, add to metadata.json what the leaderboard requires: "
            + ", ".join(done.missing_metadata)
            + " (or pass --author-email, --team-name, --project-url, --git-url)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
