"""``python -m fusion_tuner.predict``: runs :func:`fusion_tuner.cli.predict.main` (the same command as
``fusion-tuner-predict`` and ``python -m fusion_tuner predict``). Not a module to import: the commands
live in :mod:`fusion_tuner.cli`, and ``fusion_tuner.predict`` is the API function
(:func:`fusion_tuner.inference.predict`), which an import of this file would replace."""

import sys

if __name__ != "__main__":
    raise ImportError(
        "fusion_tuner.predict only runs as 'python -m fusion_tuner.predict'; "
        "import the command from fusion_tuner.cli.predict"
    )

from fusion_tuner.cli.predict import main

sys.exit(main())
