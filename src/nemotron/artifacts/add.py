"""Bring your own artifact: register an existing directory (a released checkpoint, your own data) as
``NAME:vN`` so stages can consume it and lineage starts there.

Registered by reference, never copied: a 240 GB checkpoint stays where it is. Because nothing
guards the directory afterwards, the version records a stat-based reference digest
(``digest.compute_reference_digest``: sizes, mtimes, content of the small files) and
:func:`reference_problem` re-checks it whenever a stage is submitted with that input, so a
replaced shard or an edited config is reported instead of silently trained on.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from nemotron.artifacts.formats import ADDABLE_KINDS, detect
from nemotron.errors import UserError

ADD_STAGE = "artifacts.add"
"""``run.stage`` of a registered artifact: the lineage root, made by no pipeline stage."""


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; a pair without ``=`` or with an empty key is a one-line error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--metadata {pair!r} is not KEY=VALUE", hint="e.g. --metadata source=huggingface")
        out[key.strip()] = value
    return out


def add_reference(
    registry: Any,
    path: str | Path,
    *,
    name: str,
    kind: str,
    metadata: dict[str, Any] | None = None,
    aliases: tuple[str, ...] = ("latest",),
) -> tuple[Any, bool]:
    """Validate ``path`` as ``kind`` and publish it as the next version of ``name``.

    Returns ``(artifact, created)``; registering the same unchanged directory again returns the
    existing version (``created`` False) instead of a duplicate.
    """
    from nemotron.artifacts.digest import compute_reference_digest
    from nemotron.artifacts.model import validate_name

    validate_name(name)
    if kind not in ADDABLE_KINDS:
        raise UserError(f"cannot add artifacts of kind '{kind}'", hint=f"kinds: {', '.join(ADDABLE_KINDS)}")
    source = Path(path).expanduser().resolve()
    found = detect(source, kind)
    user = dict(metadata or {})
    clash = sorted(set(user) & (set(found.metadata) | {"added"}))
    if clash:
        raise UserError(f"--metadata {clash[0]} is set by format detection", hint="pick another key")
    digest = compute_reference_digest(source)
    for existing in reversed(registry.versions(name)):
        if existing.path == str(source) and existing.digest == digest and existing.kind == kind:
            return existing, False
    files = _count(source)
    meta = {
        **found.metadata,
        **user,
        "added": {"source": str(source), "files": files[0], "bytes": files[1], "digest": "reference"},
    }
    job_id = f"add-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    run = {"stage": ADD_STAGE, "job_id": job_id, "config_name": "", "git_rev": "-"}
    artifact = registry.publish(name, kind, source, meta, inputs=None, run=run, aliases=aliases, digest=digest)
    return artifact, True


def _count(path: Path) -> tuple[int, int]:
    if path.is_file():
        return 1, path.stat().st_size
    sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def is_added(artifact: Any) -> bool:
    return artifact.run.stage == ADD_STAGE


def reference_problem(artifact: Any) -> str | None:
    """One line when a registered directory changed or vanished since ``artifacts add``; else None."""
    from nemotron.artifacts.digest import REFERENCE_PREFIX, compute_reference_digest

    if not (artifact.digest or "").startswith(REFERENCE_PREFIX) or "://" in artifact.path:
        return None
    if not Path(artifact.path).exists():
        return f"{artifact.ref}: {artifact.path} no longer exists"
    if compute_reference_digest(artifact.path) != artifact.digest:
        return (
            f"{artifact.ref}: the files at {artifact.path} changed since they were added (digest mismatch) — "
            "restore them, or put the changed data in a new directory and `nemotron artifacts add` that "
            "(a registered directory is immutable)"
        )
    return None
