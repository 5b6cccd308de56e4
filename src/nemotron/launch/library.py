"""``library.yaml``: the configuration a stage hands its training library, written next to train.yaml.

One hook per stage module: a megatron-backend node module (``super3.megatron.<script stem>``) that
defines ``library_config(train_cfg) -> dict`` has its result written to ``<job dir>/library.yaml`` and
shown by the dry run, so what NeMo-RL (or Megatron-Bridge) will read can be checked before a job
starts. Modules without the hook, and the tiny backend, write nothing. Import-light: the node module
imports its library only inside ``_launch``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from nemotron.pipeline.stages import Stage

LIBRARY_FILE = "library.yaml"


def library_config(stage: Stage, train_cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The stage module's ``library_config(train_cfg)``, or ``None`` when it has none."""
    if train_cfg.get("backend") != "megatron":
        return None
    from nemotron.paths import RECIPES_DIR

    if str(RECIPES_DIR) not in sys.path:
        sys.path.insert(0, str(RECIPES_DIR))
    module = importlib.import_module(f"super3.megatron.{Path(stage.script).stem}")
    hook = getattr(module, "library_config", None)
    return hook(train_cfg) if hook is not None else None
