"""A cheap, content-only fingerprint of an artifact's data.

Checkpoints are hundreds of GB, so hashing every byte at publish time is out of the question; a
digest over names and mtimes alone would change on every copy. The compromise: sha256 over a
manifest of every file's relative path and size plus a content hash — the whole content for files up
to ``SMALL_FILE`` bytes (configs, manifests, blend.json, index files), and the first and last
``SAMPLE`` bytes for larger files. Same data in another place gives the same digest; a truncated,
replaced or added shard changes it. It reads at most ~2 MiB per large file.

*Content only*: two runs that produce the same bytes must get the same digest, or an identical
re-run looks like new data and everything downstream re-runs. So the digest leaves out

- hidden entries (``.finalized`` run token, ``.lock``, ``.name.tmp`` of writers),
- the data-prep resume bookkeeping (``plan.json``, ``receipts/``: how the files were made — input
  mtimes, row counts per shard — not what they are; ``nemotron.data_prep.runner`` writes them),
- the artifact's own absolute location inside small files (``manifest.json`` naming
  ``<dir>/train.jsonl`` hashes as ``<artifact>/train.jsonl``).

The prefix ``sha256c:`` marks this rule; records with the older ``sha256m:`` (which hashed the run
token and absolute paths) cannot be re-verified and are accepted as they are. Data registered in
place by ``artifacts add`` gets ``sha256r:`` (:func:`compute_reference_digest`, stat-based).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SMALL_FILE = 1 << 20
SAMPLE = 1 << 20
DIGEST_PREFIX = "sha256c:"  # "c" for content: a manifest digest, not the sha256 of one byte stream
LEGACY_PREFIXES = ("sha256m:",)
BOOKKEEPING = frozenset({"plan.json", "receipts"})  # top-level producer state (see module docstring)
SELF = b"<artifact>"


def _file_hash(path: Path, size: int, root: bytes) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= SMALL_FILE:
            data = handle.read()
            h.update(data.replace(root, SELF) if root and root in data else data)
        else:
            h.update(handle.read(SAMPLE))
            handle.seek(size - SAMPLE)
            h.update(handle.read(SAMPLE))
    return h.hexdigest()


def _counted(rel_parts: tuple[str, ...]) -> bool:
    if any(part.startswith(".") for part in rel_parts):
        return False
    return not (rel_parts and rel_parts[0] in BOOKKEEPING)


def manifest(path: Path) -> list[tuple[str, int, str]]:
    """``(relative path, size, content hash)`` for every content file under ``path`` (or ``path`` itself)."""
    path = Path(path)
    if path.is_file():
        size = path.stat().st_size
        return [(path.name, size, _file_hash(path, size, b""))]
    root = os.fsencode(os.path.abspath(path))
    rows: list[tuple[str, int, str]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = Path(dirpath).relative_to(path).parts
        dirnames[:] = sorted(d for d in dirnames if _counted((*rel_dir, d)))
        for filename in sorted(filenames):
            if not _counted((*rel_dir, filename)):
                continue
            full = Path(dirpath) / filename
            rel = full.relative_to(path).as_posix()
            if full.is_symlink() and not full.exists():
                rows.append((rel, -1, "dangling:" + os.readlink(full)))
                continue
            size = full.stat().st_size
            rows.append((rel, size, _file_hash(full, size, root)))
    return rows


def compute_digest(path: Path | str) -> str:
    """``sha256c:<hex>`` over the content manifest of ``path`` (see module docstring)."""
    h = hashlib.sha256()
    for rel, size, content in manifest(Path(path)):
        h.update(f"{rel}\0{size}\0{content}\n".encode())
    return DIGEST_PREFIX + h.hexdigest()


REFERENCE_PREFIX = "sha256r:"  # "r" for reference: registered in place by `artifacts add`


def reference_manifest(path: Path) -> list[tuple[str, int, int, str]]:
    """``(relative path, size, mtime_ns, content hash or "")`` for every content file under ``path``.

    For data registered in place (``artifacts add`` of a terabyte checkpoint) reading even 2 MiB of
    every shard is too slow; sizes and mtimes catch a replaced or rewritten shard, and the full
    content of small files (configs, index files, blend.json, tracker files) catches an edited one.
    Hidden entries are left out, as in :func:`manifest`.
    """
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if (p.is_file() or p.is_symlink()) and not any(x.startswith(".") for x in p.relative_to(path).parts)
        )
    rows: list[tuple[str, int, int, str]] = []
    for full in files:
        rel = full.name if full == path else full.relative_to(path).as_posix()
        if full.is_symlink() and not full.exists():
            rows.append((rel, -1, 0, "dangling:" + os.readlink(full)))
            continue
        stat = full.stat()
        content = _file_hash(full, stat.st_size, b"") if stat.st_size <= SMALL_FILE else ""
        rows.append((rel, stat.st_size, stat.st_mtime_ns, content))
    return rows


def compute_reference_digest(path: Path | str) -> str:
    """``sha256r:<hex>`` over :func:`reference_manifest` (stat-only for files over 1 MiB)."""
    h = hashlib.sha256()
    for rel, size, mtime, content in reference_manifest(Path(path)):
        h.update(f"{rel}\0{size}\0{mtime}\0{content}\n".encode())
    return REFERENCE_PREFIX + h.hexdigest()


def digest_matches(path: Path | str, recorded: str | None) -> bool:
    """True when ``path`` still holds what was published (or the record cannot be re-checked).

    Unrecorded digests (URIs) and legacy ``sha256m:`` ones are accepted: there is nothing this
    rule can recompute them against. ``sha256r:`` (``artifacts add``) is recomputed by its own rule.
    """
    if not recorded or recorded.startswith(LEGACY_PREFIXES):
        return True
    if recorded.startswith(REFERENCE_PREFIX):
        return compute_reference_digest(path) == recorded
    return compute_digest(path) == recorded
