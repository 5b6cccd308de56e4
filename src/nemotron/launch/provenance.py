"""Facts about the submitting side that job.yaml records: versions, git revision, who and where."""

from __future__ import annotations

import getpass
import platform
import socket
import subprocess
import sys
from importlib import metadata

from nemotron.paths import REPO_ROOT

TRACKED_PACKAGES = ("nemotron", "nemo-run", "wandb", "pydantic", "megatron-bridge", "megatron-core", "nemo-rl")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a run (missing ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state() -> dict[str, object]:
    """Revision of the checkout the recipe runs from, and whether it has uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    rev = git("rev-parse", "HEAD")
    if rev is None:
        return {"rev": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"rev": rev, "dirty": bool(status)}


def submitter() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"user": user, "host": socket.gethostname(), "python": sys.executable}
