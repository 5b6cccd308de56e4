"""Filesystem primitives that stay correct on a shared (NFS-like) filesystem.

The registry may live on a filesystem shared by the login node and every compute node, so it uses
only operations that are atomic there: POSIX record locks (``fcntl.lockf``, which NFS forwards to
the server's lock manager, unlike sqlite's assumptions), ``os.replace`` of a fully written and
fsynced temp file, and ``os.link`` to claim a file name exactly once (it fails if the name exists).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

LOCK_TIMEOUT_S = 120.0

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    # POSIX locks belong to the process: two threads of one process would both "hold" the file
    # lock, and closing any descriptor of the file drops it. A per-path thread lock closes that gap.
    key = str(path)
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) across processes, hosts and threads.

    Polls with a non-blocking lock so a stale lock on a broken NFS server becomes a clear error
    after ``timeout`` seconds instead of a hang.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    tlock = _thread_lock(path)
    if not tlock.acquire(timeout=timeout):
        raise UserError(f"timed out waiting for the registry lock {path}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            delay = 0.002
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    if time.monotonic() > deadline:
                        raise UserError(
                            f"timed out after {timeout:.0f}s waiting for the registry lock {path}",
                            hint="another process holds it; if none does, the filesystem's lock service is down",
                        ) from exc
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing releases the lock
    finally:
        tlock.release()


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_tmp(target: Path, data: bytes) -> Path:
    tmp = _tmp_name(target)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not leave half-written temp files behind
            tmp.unlink()
        raise
    return tmp


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets you fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def write_json_atomic(target: Path, obj: Any) -> None:
    """Replace ``target`` with ``obj`` as JSON; readers see the old or the new file, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_tmp(target, dumps(obj))
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def create_json_exclusive(target: Path, obj: Any) -> bool:
    """Create ``target`` with ``obj`` only if no such file exists; True when this call created it.

    ``os.link`` is atomic and refuses an existing name, on local disks and on NFS alike. On NFS a
    retransmitted link can report EEXIST although it succeeded, so the temp file's link count
    decides.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_tmp(target, dumps(obj))
    try:
        try:
            os.link(tmp, target)
            created = True
        except FileExistsError:
            created = os.stat(tmp).st_nlink == 2
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if created:
        _fsync_dir(target.parent)
    return created


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
