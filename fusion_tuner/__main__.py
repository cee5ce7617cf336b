"""``python -m fusion_tuner [COMMAND] ...``: the dispatcher of :mod:`fusion_tuner.cli`."""

import sys

from fusion_tuner.cli import main

sys.exit(main())
