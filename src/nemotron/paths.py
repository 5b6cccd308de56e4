"""Where nemotron keeps its state on the submit side (and, on a shared filesystem, on the nodes).

Everything lives under one home so a test (or a user) can point ``NEMOTRON_HOME`` elsewhere and get
a clean world: job directories, the local artifact registry, stage outputs and NeMo-Run's own home.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
"""configs/ and recipes/ as shipped inside the wheel (pyproject: tool.hatch.build.targets.wheel)."""


def _code_root() -> Path:
    """The checkout around this package (``src/nemotron`` in it), else the data shipped in the wheel."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "configs").is_dir() and (checkout / "recipes").is_dir():
        return checkout
    return PACKAGE_DATA


REPO_ROOT = _code_root()
"""Where configs/ and recipes/ live: the checkout this package runs from, or, installed from a wheel
outside a checkout, the package's own ``_data`` copy (job scripts then run from there)."""

CONFIGS_DIR = REPO_ROOT / "configs"
RECIPES_DIR = REPO_ROOT / "recipes"


def nemotron_home() -> Path:
    """Root of all submit-side state: ``$NEMOTRON_HOME`` or ``~/.nemotron``."""
    return Path(os.environ.get("NEMOTRON_HOME") or Path.home() / ".nemotron").expanduser()


def jobs_root() -> Path:
    """One directory per submitted job/experiment (job.yaml, train.yaml, logs)."""
    return nemotron_home() / "jobs"


def default_artifacts_root() -> Path:
    """The local artifact registry when nothing else is configured. Precedence
    (``$NEMOTRON_ARTIFACTS_ROOT`` > env.toml ``[artifacts] root`` > this) lives in
    ``nemotron.env.profiles.EnvFile.artifacts_root``."""
    return nemotron_home() / "artifacts"


def default_outputs_root() -> Path:
    """Where stages write their outputs (checkpoints, shards) unless configured otherwise."""
    return nemotron_home() / "outputs"


def nemorun_home() -> Path:
    """NeMo-Run's home. It reads NEMORUN_HOME at import time, so set it before importing nemo_run."""
    return Path(os.environ.get("NEMORUN_HOME") or nemotron_home() / "nemorun")
