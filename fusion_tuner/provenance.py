"""Which code made a result: the git revision of the checkout the package runs from."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def git_revision(where: Path = PACKAGE_DIR) -> str:
    """The short commit of the checkout the package runs from (``+dirty`` with uncommitted
    changes), or ``unknown`` when its files are not tracked by a git checkout (an installed
    wheel, even inside someone else's repository)."""
    try:
        tracked = subprocess.run(
            ["git", "-C", str(where), "ls-files", "--error-unmatch", "__init__.py"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if tracked.returncode != 0:
            return "unknown"
        rev = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if rev.returncode != 0 or not rev.stdout.strip():
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
