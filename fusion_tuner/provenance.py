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

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10
        )

    try:
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return "unknown"
        rev = git("rev-parse", "--short=10", "HEAD")
        if rev.returncode != 0 or not rev.stdout.strip():
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
