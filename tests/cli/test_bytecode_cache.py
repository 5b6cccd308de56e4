"""The CLI caches its bytecode per user when PYTHONDONTWRITEBYTECODE is set (timings: benchmarks/bench_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nemotron

PACKAGE_DIR = Path(nemotron.__file__).resolve().parent
ENTRY = "from nemotron.cli.main import main; main()"


def run_help(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "NEMOTRON_PYCACHE")}
    full = {**base, "PYTHONDONTWRITEBYTECODE": "1", "NEMOTRON_HOME": str(tmp_path / "home"), **env}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "super3", "--help"], env=full, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def test_bytecode_goes_to_the_user_cache_not_the_tree(tmp_path: Path) -> None:
    cache = tmp_path / "pycache"
    before = set(PACKAGE_DIR.rglob("*.pyc"))
    run_help(tmp_path, NEMOTRON_PYCACHE=str(cache))
    cached = list(cache.rglob("*.pyc"))
    assert any("typer" in str(p) for p in cached), cached[:5]
    assert any(p.name.startswith("super3.") for p in cached)
    assert set(PACKAGE_DIR.rglob("*.pyc")) == before


def test_default_cache_follows_xdg_cache_home(tmp_path: Path) -> None:
    run_help(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert list((tmp_path / "xdg" / "nemotron" / "pycache").rglob("*.pyc"))


def test_opt_out_writes_nothing(tmp_path: Path) -> None:
    run_help(tmp_path, NEMOTRON_PYCACHE="0", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert not (tmp_path / "xdg").exists()
