"""``python -m fusion_tuner.analyze``: runs :func:`fusion_tuner.cli.analyze.main` (the same command as
``fusion-tuner-analyze`` and ``python -m fusion_tuner analyze``). Not a module to import: the commands
live in :mod:`fusion_tuner.cli`."""

import sys

if __name__ != "__main__":
    raise ImportError(
        "fusion_tuner.analyze only runs as 'python -m fusion_tuner.analyze'; "
        "import the command from fusion_tuner.cli.analyze"
    )

from fusion_tuner.cli.analyze import main

sys.exit(main())
