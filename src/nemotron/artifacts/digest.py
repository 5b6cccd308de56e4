"""A cheap, content-based fingerprint of an artifact's data.

Checkpoints are hundreds of GB, so hashing every byte at publish time is out of the question; a
digest over names and mtimes alone would change on every copy. The compromise: sha256 over a
manifest of every file's relative path and size plus a content hash — the whole content for files up
to ``SMALL_FILE`` bytes (configs, manifests, blend.json, index files), and the first and last
``SAMPLE`` bytes for larger files. Same data in another place gives the same digest; a truncated,
replaced or added shard changes it. It reads at most ~2 MiB per large file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SMALL_FILE = 1 << 20
SAMPLE = 1 << 20
DIGEST_PREFIX = "sha256m:"  # "m" for manifest: not the sha256 of a single byte stream


def _file_hash(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= SMALL_FILE:
            h.update(handle.read())
        else:
            h.update(handle.read(SAMPLE))
            handle.seek(size - SAMPLE)
            h.update(handle.read(SAMPLE))
    return h.hexdigest()


def manifest(path: Path) -> list[tuple[str, int, str]]:
    """``(relative path, size, content hash)`` for every file under ``path`` (or ``path`` itself)."""
    path = Path(path)
    if path.is_file():
        size = path.stat().st_size
        return [(path.name, size, _file_hash(path, size))]
    rows: list[tuple[str, int, str]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            rel = full.relative_to(path).as_posix()
            if full.is_symlink() and not full.exists():
                rows.append((rel, -1, "dangling:" + os.readlink(full)))
                continue
            size = full.stat().st_size
            rows.append((rel, size, _file_hash(full, size)))
    return rows


def compute_digest(path: Path | str) -> str:
    """``sha256m:<hex>`` over the manifest of ``path`` (see module docstring)."""
    h = hashlib.sha256()
    for rel, size, content in manifest(Path(path)):
        h.update(f"{rel}\0{size}\0{content}\n".encode())
    return DIGEST_PREFIX + h.hexdigest()
