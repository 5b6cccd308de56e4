"""Crash-safe file writes: every output appears complete or not at all.

A data-prep run may be killed at any moment (``kill -9``, Slurm preemption). Files are written to a
temp name next to the target (same filesystem), flushed to disk, then ``os.replace``d into place, so
a reader never sees half a file and a rerun never trusts one.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_MARK = ".tmp."


def tmp_path(path: Path) -> Path:
    """A temp name unique to this host and process, recognisable by ``TMP_MARK`` for cleanup."""
    return path.with_name(f"{path.name}{TMP_MARK}{socket.gethostname()}.{os.getpid()}")


class HashingWriter:
    """A binary file writer that tracks size and sha256 of what it wrote (no second read pass)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@contextmanager
def atomic_open(path: Path) -> Iterator[HashingWriter]:
    """Write ``path`` atomically; yields a ``HashingWriter``. On error the temp file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            writer = HashingWriter(fh)
            yield writer
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> tuple[int, str]:
    """Atomically write ``data``; returns (size, sha256)."""
    with atomic_open(path) as writer:
        writer.write(data)
    return writer.size, writer.hexdigest()


def dumps_canonical(obj: Any) -> str:
    """Deterministic JSON (sorted keys, fixed separators): equal content gives equal bytes."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, obj: Any) -> tuple[int, str]:
    return write_bytes_atomic(path, dumps_canonical(obj).encode("utf-8"))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            sha.update(block)
    return sha.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(dumps_canonical(obj).encode("utf-8")).hexdigest()


def remove_stale_tmp(root: Path) -> int:
    """Delete leftover temp files under ``root`` (only safe once no writer is running). Returns the count."""
    removed = 0
    if not root.exists():
        return 0
    for path in root.rglob(f"*{TMP_MARK}*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
