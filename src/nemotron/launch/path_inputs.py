"""``run.model=/models/released-checkpoint``: a path where an artifact reference is expected is
registered with ``artifacts add`` first (checked for its format, by reference), so lineage still
starts at an artifact. A dry-run checks the format but registers nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage


def looks_like_path(value: Any) -> bool:
    """Artifact references never contain ``/`` and never start with ``.`` or ``~``; paths do."""
    return isinstance(value, str) and ("/" in value or value.startswith(("~", ".")))


def name_for(path: Path) -> str:
    """An artifact name from the directory name (``NVIDIA-Nemotron-3-Super-120B-A12B-BF16``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip("-._")[:100]
    return name or "added"


def register_path_inputs(
    stage: Stage, overrides: dict[str, Any], registry: Any, *, dry_run: bool, echo: Any = None
) -> dict[str, Any]:
    """``overrides`` with every ``run.<slot>=PATH`` replaced by the reference of the registered path."""
    from nemotron.artifacts.add import add_reference
    from nemotron.artifacts.digest import compute_reference_digest
    from nemotron.artifacts.formats import detect

    ports = {f"run.{p.slot}": p for p in stage.inputs}
    out = dict(overrides)
    for key, value in overrides.items():
        if key not in ports or not looks_like_path(value):
            continue
        path = Path(str(value)).expanduser().resolve()
        if not path.exists():
            raise UserError(
                f"{key}={value} is not an artifact reference (NAME, NAME:latest, NAME:v3) and no such path exists",
                hint="pass a registered artifact or an existing directory",
            )
        kind, name = ports[key].kind, name_for(path)
        if dry_run:
            detect(path, kind)  # the format check, without writing the registry
            digest = compute_reference_digest(path)
            known = [a for a in registry.versions(name) if a.path == str(path) and a.digest == digest]
            out[key] = known[-1].ref if known else f"{name}:latest"
            if echo and not known:
                echo(f"note: {key}={path} would be registered as {name} ({kind}) on submit\n")
            continue
        artifact, created = add_reference(registry, path, name=name, kind=kind)
        out[key] = artifact.ref
        if echo:
            echo(f"{'registered' if created else 'using'} {path} as {artifact.ref} ({kind})\n")
    return out
