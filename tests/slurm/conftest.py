"""Slurm tests submit real jobs to the local cluster (``../shared/tools/local-slurm.sh start``).

Without Slurm they are skipped with the reason — except under CI=true, where a missing or stopped
cluster fails them: CI must exercise the real scheduler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from nemotron.env.profiles import Profile

START_HINT = "start it with ../shared/tools/local-slurm.sh start (.ci/run does)"


def slurm_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return f"Slurm is not installed (no sinfo on PATH); {START_HINT}"
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol ping failed: {exc}; {START_HINT}"
    if proc.returncode != 0 or "UP" not in proc.stdout:
        return f"slurmctld is not answering; {START_HINT}"
    if subprocess.run(["sacct", "-n", "-X", "-j", "1"], capture_output=True, timeout=20).returncode != 0:
        return f"sacct fails (NeMo-Run needs Slurm accounting / slurmdbd); {START_HINT}"
    return None


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 - pytest hook signature
    slurm_items = [item for item in items if item.get_closest_marker("slurm")]
    if not slurm_items:
        return
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        for item in slurm_items:  # the fixture fails each of them with the reason
            item.fixturenames.insert(0, "_slurm_required")
    else:
        for item in slurm_items:
            item.add_marker(pytest.mark.skip(reason=problem))


def require_slurm() -> None:
    """For Slurm tests outside tests/slurm: skip with the reason, or fail under CI=true."""
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {problem}")
    pytest.skip(problem)


@pytest.fixture
def _slurm_required() -> None:
    problem = slurm_problem()
    if problem:
        pytest.fail(f"CI=true but {problem}")


@pytest.fixture(autouse=True)
def devnull_stdin(monkeypatch: pytest.MonkeyPatch):
    """NeMo-Run shells out through invoke, which reads stdin; pytest's captured stdin raises."""
    with open(os.devnull) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield


@pytest.fixture
def slurm_profile() -> Profile:
    """The local cluster through a local tunnel (we are on its "login node"), no container."""
    return Profile(name="local-slurm", executor="slurm", tunnel="local", partition="batch", time="00:05:00")
