"""``python -m fusion_tuner.report``: runs :func:`fusion_tuner.cli.report.main` (the same command as
``fusion-tuner-report`` and ``python -m fusion_tuner report``). Not a module to import: the commands
live in :mod:`fusion_tuner.cli`."""

import sys

if __name__ != "__main__":
    raise ImportError(
        "fusion_tuner.report only runs as 'python -m fusion_tuner.report'; "
        "import the command from fusion_tuner.cli.report"
    )

from fusion_tuner.cli.report import main

sys.exit(main())
