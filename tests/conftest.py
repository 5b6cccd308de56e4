"""Session-wide isolation shared by every test directory.

Every test session gets its own NEMOTRON_HOME (jobs, artifacts, outputs) and NEMORUN_HOME before
anything imports nemo_run: NeMo-Run reads NEMORUN_HOME once per process, so the session value is
the one all in-process submissions use. Tests that need their own home still monkeypatch
NEMOTRON_HOME; only NeMo-Run's directory stays per session. Nothing touches ~/.nemotron.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_SESSION_HOME = tempfile.mkdtemp(prefix="nemotron-tests-")
os.environ["NEMOTRON_HOME"] = _SESSION_HOME
os.environ["NEMORUN_HOME"] = os.path.join(_SESSION_HOME, "nemorun")
for _var in ("NEMOTRON_ENV_FILE", "NEMOTRON_ARTIFACTS_ROOT"):
    os.environ.pop(_var, None)


def pytest_configure(config):
    # NeMo-Run imports leptonai (and it fastapi), whose modules warn about their own deprecations on import.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:leptonai.*")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:fastapi.*")


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest hook signature
    if os.environ.get("NEMOTRON_KEEP_TEST_HOME") != "1":
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)
