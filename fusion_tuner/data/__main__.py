"""``python -m fusion_tuner.data``: list and download the public data sets (:mod:`fusion_tuner.cli.datasets`)."""

import sys

from fusion_tuner.cli.datasets import main

sys.exit(main())
