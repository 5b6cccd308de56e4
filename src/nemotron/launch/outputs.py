"""Submit-time checks of where a stage will write and what it will publish.

The node would find these only after the job started (or, worse, after it overwrote something):
an ``output.name``/alias the registry cannot store, an ``output_dir`` that is a file or sits below
one, and an ``output_dir`` that already holds a published artifact — published data is immutable,
so a new job may not write there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nemotron.errors import UserError


def check_output(data: dict[str, Any], registry: Any) -> None:
    """Raise a one-line ``UserError`` for an output this stage could not (or must not) publish."""
    from nemotron.artifacts.model import validate_alias, validate_name

    output = data.get("output") or {}
    validate_name(str(output.get("name", "")), "output.name")
    for alias in output.get("aliases") or []:
        validate_alias(str(alias))
    if data.get("output_dir"):
        check_output_dir(Path(str(data["output_dir"])).expanduser(), registry)


def check_output_dir(path: Path, registry: Any) -> None:
    """``path`` can become a new job's output directory: not a file, not below one, not published."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output_dir {path} is a file, not a directory", hint="point output_dir at a directory")
    for parent in (path, *path.parents):
        if parent.exists():
            if parent != path and not parent.is_dir():
                raise UserError(f"output_dir {path}: {parent} is a file", hint="choose a path below a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"output_dir {path}: {parent} is not writable", hint="choose a directory you can write")
            break
    owner = registry.owner_of(path) if path.exists() else None
    if owner is not None:
        raise UserError(
            f"output_dir {path} holds the published {owner.ref} (job {owner.run.job_id or '?'})",
            hint=f"published directories are immutable: use {owner.ref} as it is, or choose a new output_dir",
        )
