"""``python -m fusion_tuner.data list | download NAME [--to DIR]``: the public data sets by name
(see :mod:`fusion_tuner.data.download`). Exit status: 0 done, 1 a download or check failed, 2 a
bad argument."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fusion_tuner import paths
from fusion_tuner.data.download import DownloadError, catalogue, download, list_text
from fusion_tuner.data.registry import DATASETS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fusion_tuner.data",
        description="The public data sets by name: list them, download one (resumable, "
        "checked against its recorded checksum).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="the known data sets, their sizes, licences and status")
    ls.add_argument("--to", type=Path, help="look for the files in DIR instead")
    dl = sub.add_parser(
        "download",
        help="download a data set by name",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download NAME into DIR (default: the folder data://NAME names, "
        f"{paths.data_root()}/NAME; JARVIS zips: the JARVIS store folder dataset=jarvis "
        "reads). Resumable, checked, written atomically.",
        epilog="data sets:\n"
        + catalogue()
        + "\n\nbundled samples (no download needed): "
        + ", ".join(f"sample://{n}" for n in paths.sample_names()),
    )
    dl.add_argument("name", choices=sorted(DATASETS), metavar="NAME", help="a data set (below)")
    dl.add_argument("--to", type=Path, help="the destination folder")
    dl.add_argument(
        "--retries", type=int, default=3, help="resume this many times after a dropped connection"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        try:
            print(list_text(args.to), flush=True)
        except BrokenPipeError:  # `list | grep -q ...`, `list | head`: the reader has enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
        return 0
    if args.retries < 0:
        print(f"error: --retries={args.retries} must be >= 0", file=sys.stderr)
        return 2
    try:
        where = download(args.name, args.to, retries=args.retries)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: done, in {where}")
    return 0
