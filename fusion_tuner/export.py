"""``python -m fusion_tuner.export``: runs :func:`fusion_tuner.cli.export.main` (the same command as
``fusion-tuner-export`` and ``python -m fusion_tuner export``). Not a module to import: the commands
live in :mod:`fusion_tuner.cli`."""

import sys

if __name__ != "__main__":
    raise ImportError(
        "fusion_tuner.export only runs as 'python -m fusion_tuner.export'; "
        "import the command from fusion_tuner.cli.export"
    )

from fusion_tuner.cli.export import main

sys.exit(main())
