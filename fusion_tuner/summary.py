"""``python -m fusion_tuner.summary``: runs :func:`fusion_tuner.cli.summary.main` (the same command as
``fusion-tuner-summary`` and ``python -m fusion_tuner summary``). Not a module to import: the commands
live in :mod:`fusion_tuner.cli`."""

import sys

if __name__ != "__main__":
    raise ImportError(
        "fusion_tuner.summary only runs as 'python -m fusion_tuner.summary'; "
        "import the command from fusion_tuner.cli.summary"
    )

from fusion_tuner.cli.summary import main

sys.exit(main())
