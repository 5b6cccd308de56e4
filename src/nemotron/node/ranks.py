"""Which process of a multi-process job this is.

Under torchrun every worker gets ``RANK``; under ``srun`` without torchrun each task gets
``SLURM_PROCID``. torchrun children inherit ``SLURM_PROCID`` from their node's task (it is the node
index there, not the rank), so ``RANK`` must win.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def global_rank(environ: Mapping[str, str] | None = None) -> int:
    """Global rank of this process: ``RANK``, else ``SLURM_PROCID``, else 0."""
    env = os.environ if environ is None else environ
    for name in ("RANK", "SLURM_PROCID"):
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def is_rank_zero(environ: Mapping[str, str] | None = None) -> bool:
    """True for the one process that may publish artifacts."""
    return global_rank(environ) == 0
