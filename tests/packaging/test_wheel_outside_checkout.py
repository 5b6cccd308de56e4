"""`pip install .` / `uv tool install` gives a working CLI away from any checkout.

Builds the wheel with `uv build`, installs it into a fresh venv with `uv pip install` (from uv's cache
where it can), and runs the installed `nemotron` from an empty directory: `super3 config ls` and a
`--dry-run` must find the configs and node scripts shipped inside the package (nemotron/_data).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


def test_installed_wheel_runs_outside_a_checkout(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    _run([uv, "build", "--wheel", "-o", str(tmp_path / "dist")], cwd=ROOT)
    (wheel,) = (tmp_path / "dist").glob("nemotron-*.whl")
    venv = tmp_path / "venv"
    _run([uv, "venv", "-q", str(venv), "-p", "3.11"])
    _run([uv, "pip", "install", "-q", str(wheel)], env={**os.environ, "VIRTUAL_ENV": str(venv)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "env.toml").write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")},
        "NEMOTRON_HOME": str(tmp_path / "home"),
        "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"),
    }
    cli = str(venv / "bin" / "nemotron")
    listed = _run([cli, "super3", "config", "ls"], cwd=elsewhere, env=env).stdout
    assert "pretrain" in listed and "tiny" in listed
    plan = _run([cli, "super3", "data", "prep", "rl", "-c", "tiny", "--dry-run"], cwd=elsewhere, env=env).stdout
    shipped = venv / "lib" / "python3.11" / "site-packages" / "nemotron" / "_data"
    assert str(shipped / "recipes" / "super3" / "data_prep.py") in plan
    assert (shipped / "recipes" / "super3" / "assets" / "tiny" / "rl_prompts.jsonl").is_file()
    assert not list(shipped.rglob("*.pyc"))
