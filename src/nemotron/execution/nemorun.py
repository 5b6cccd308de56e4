"""Import NeMo-Run the one safe way: with NEMORUN_HOME pinned first, and without its heavy extras.

NeMo-Run reads ``NEMORUN_HOME`` at import time (experiment dirs, ``.slurm_jobs``, ``.tunnels``), so
it must be set from ``nemotron.paths.nemorun_home()`` before the first import, and a process can only
ever talk to one NeMo-Run home. Importing it also drags in torch (for one YAML representer of
``torch.dtype`` that we never use) and chardet (requests' optional encoding sniffer): together a
few seconds per command on a loaded login node. Both imports are guarded in the libraries
(``except ModuleNotFoundError`` / ``except ImportError``), so we hide them for the duration of the
import and restore the module table afterwards.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from types import ModuleType

from nemotron.paths import nemorun_home

_BLOCK_DURING_IMPORT = ("torch", "chardet")


def nemo_run() -> ModuleType:
    """``import nemo_run`` with NEMORUN_HOME set and its console logging turned down."""
    home = str(nemorun_home())
    module = sys.modules.get("nemo_run")
    if module is not None:
        from nemo_run.config import get_nemorun_home

        if os.path.realpath(get_nemorun_home()) != os.path.realpath(home):
            raise RuntimeError(
                f"nemo_run was already imported with NEMORUN_HOME={get_nemorun_home()}, "
                f"but this command needs {home}; NeMo-Run only reads it once per process"
            )
        return module
    os.environ["NEMORUN_HOME"] = home
    os.makedirs(home, exist_ok=True)
    blocked = [name for name in _BLOCK_DURING_IMPORT if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        module = importlib.import_module("nemo_run")
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    for name in ("nemo_run", "torchx", "paramiko", "invoke", "fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # NeMo-Run narrates on its own rich console ("Detected Torchrun launcher ..."); we print our own.
    from nemo_run.core.frontend.console.api import CONSOLE

    CONSOLE.quiet = True
    return module
