"""Helpers shared by the test modules (no test module imports another).

- :mod:`tests.helpers.data`: small on-disk datasets in the exact layouts the loaders read.
- :mod:`tests.helpers.cli`: the test budget (``TINY``) and the command runners.
- :mod:`tests.helpers.runs`: runs trained in process, shared by the session's fixtures.

The data builders are re-exported here (``from tests.helpers import write_folder``).
"""

from tests.helpers.data import (
    NACL_POSCAR,
    RUTILE_CIF,
    WURTZITE_CIF,
    jarvis_records,
    nacl_cif,
    p1_cif,
    wandb_offline_records,
    write_cif_folder,
    write_folder,
    write_jarvis_store,
)

__all__ = [
    "NACL_POSCAR",
    "RUTILE_CIF",
    "WURTZITE_CIF",
    "jarvis_records",
    "nacl_cif",
    "p1_cif",
    "wandb_offline_records",
    "write_cif_folder",
    "write_folder",
    "write_jarvis_store",
]
