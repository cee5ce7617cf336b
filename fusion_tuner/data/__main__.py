"""``python -m fusion_tuner.data``: list and download the public data sets (see download.py)."""

import sys

from fusion_tuner.data.download import main

sys.exit(main())
