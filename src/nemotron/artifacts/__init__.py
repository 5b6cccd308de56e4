"""Artifacts: the local registry (always), a W&B mirror (when configured), lineage.

``Registry(root)`` publishes and resolves versioned artifacts on a plain (possibly shared)
filesystem; ``nemotron.artifacts.node`` is what node scripts call; ``nemotron.artifacts.resolve``
expands ``${art:NAME,FIELD}``; ``nemotron.artifacts.lineage`` builds and renders lineage graphs.
Only the standard library is imported here; wandb is imported inside the mirror's functions.
"""

from nemotron.artifacts.model import Artifact, Ref, RunInfo, parse_ref
from nemotron.artifacts.registry import Registry, default_root

__all__ = ["Artifact", "Ref", "Registry", "RunInfo", "default_root", "parse_ref"]
