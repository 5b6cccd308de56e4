"""A per-user bytecode cache for the CLI and node scripts, so a process does not recompile every module.

Why: machines that set ``PYTHONDONTWRITEBYTECODE=1`` (common on shared clusters and CI images) never
keep ``.pyc`` files, and the package manager no longer compiles them at install time (that made every
``uv run`` recompile ~22k files). Then each ``nemotron`` command compiles Typer, Click, Rich and our
own modules from source again: ~0.1-0.2 s of a ~0.3 s ``--help``; a tiny-backend stage compiles
torch, transformers, TRL and lm-eval again (tens of seconds on a loaded machine).

What: when bytecode writing is off, the entry points (``nemotron``, ``nemotron.node.runner.main``)
point ``sys.pycache_prefix`` at a directory of their own (``$NEMOTRON_PYCACHE`` if it names one, else
``$XDG_CACHE_HOME/nemotron/pycache`` or ``~/.cache/nemotron/pycache``) and turn writing on for this
process only. Modules are compiled once
into that mirror tree; the source tree, the virtual environment and child processes (which still see
``PYTHONDONTWRITEBYTECODE``) are never written to. ``NEMOTRON_PYCACHE=0`` turns this off, and an
explicit ``PYTHONPYCACHEPREFIX`` is respected as it is. An unwritable cache only costs the speed-up:
the import system ignores failed ``.pyc`` writes.
"""

from __future__ import annotations

import os
import sys

OPT_OUT = ("0", "off", "false", "no")


def pycache_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """Where this process should cache bytecode, or None to leave Python's settings alone."""
    chosen = environ.get("NEMOTRON_PYCACHE", "").strip()
    if chosen.lower() in OPT_OUT:
        return None
    if chosen:
        return os.path.expanduser(chosen)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nemotron", "pycache")


def enable_bytecode_cache() -> str | None:
    """Cache bytecode under ``pycache_dir()`` when writing is off and no prefix is set; returns the prefix used."""
    if not sys.dont_write_bytecode or sys.pycache_prefix is not None:
        return None
    target = pycache_dir()
    if target is None:
        return None
    sys.pycache_prefix = target
    sys.dont_write_bytecode = False
    return target
