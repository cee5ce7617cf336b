"""Every command of fusion_tuner, and the one dispatcher in front of them.

``python -m fusion_tuner [COMMAND] ARGS`` (console script ``fusion-tuner``) runs

=========  ==============================  =====================================================
command    module                          what it does
=========  ==============================  =====================================================
(none)     :mod:`fusion_tuner.cli.train`   train one run, or a sweep with ``-m`` (Hydra overrides)
predict    :mod:`fusion_tuner.cli.predict` predict new crystals with a run or a seed ensemble
analyze    :mod:`fusion_tuner.cli.analyze` curves, CKA, comparisons, ensembles, data checks
export     :mod:`fusion_tuner.cli.export`  a JARVIS leaderboard contribution
report     :mod:`fusion_tuner.cli.report`  one report for the whole plan
summary    :mod:`fusion_tuner.cli.summary` (re)write a sweep's or a search's summary
data       :mod:`fusion_tuner.cli.datasets`    list and download the public data sets
help       :mod:`fusion_tuner.cli.help`    every config group and option (``--help``)
=========  ==============================  =====================================================

Each command also has its own console script (``fusion-tuner-predict``, ...) and its
``python -m fusion_tuner.<command>`` form. Anything else on the command line (Hydra overrides such
as ``+phase=1 -m``, or nothing) trains: an override is never a bare command word.
"""

from __future__ import annotations

import importlib
import sys

# command -> the module whose main(argv) -> int runs it
COMMANDS = {
    "predict": "fusion_tuner.cli.predict",
    "analyze": "fusion_tuner.cli.analyze",
    "export": "fusion_tuner.cli.export",
    "report": "fusion_tuner.cli.report",
    "summary": "fusion_tuner.cli.summary",
    "data": "fusion_tuner.cli.datasets",
}


def main(argv: list[str] | None = None) -> int:
    """Run the command that ``argv`` (default: ``sys.argv[1:]``) names, else train.

    Returns:
        The command's exit status (training exits through Hydra and ``sys.exit`` itself).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[args[0]])
        return int(module.main(args[1:]))
    if args and args[0] == "help":
        args = ["--help", *args[1:]]
    from fusion_tuner.cli import train

    sys.argv[1:] = args  # Hydra reads sys.argv
    train.main()
    return 0
