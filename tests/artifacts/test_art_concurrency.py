"""Publishing under real concurrency: separate processes (spawned, not forked) and threads."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

from nemotron.artifacts.fsio import read_json
from nemotron.artifacts.registry import Registry

WORKERS = 8
PER_WORKER = 50


def _publish_many(root: str, data: str, worker: int, count: int) -> None:
    registry = Registry(Path(root))
    for i in range(count):
        registry.publish(
            "shared-model",
            "model",
            data,
            {"worker": worker, "i": i},
            [],
            {"stage": "sft", "id": f"w{worker}-{i}"},
            aliases=("latest", f"worker-{worker}"),
        )


def _check(registry: Registry, expected: set[tuple[int, int]], workers: int, per_worker: int) -> None:
    arts = registry.versions("shared-model")
    total = workers * per_worker
    assert [a.version for a in arts] == list(range(1, total + 1))  # no gap, no duplicate
    assert {(a.metadata["worker"], a.metadata["i"]) for a in arts} == expected  # nothing lost
    assert len({a.run.job_id for a in arts}) == total
    index = read_json(registry.root / "shared-model" / "index.json")
    assert index["versions"] == list(range(1, total + 1))
    assert index["aliases"]["latest"] == total and registry.get("shared-model").version == total
    for w in range(workers):  # each worker alias points at that worker's last publish
        last = registry.get(f"shared-model:worker-{w}")
        assert (last.metadata["worker"], last.metadata["i"]) == (w, per_worker - 1)
    assert not [p for p in registry.root.rglob("*") if p.name.endswith(".tmp")]
    # per worker, versions increase with i (a publish is visible before the next one starts)
    for w in range(workers):
        mine = [a.version for a in arts if a.metadata["worker"] == w]
        assert mine == sorted(mine)


def test_eight_processes_publish_fifty_versions_each(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "weights.bin").write_bytes(b"\0" * 1024)
    root = tmp_path / "registry"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_publish_many, args=(str(root), str(data), w, PER_WORKER)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    expected = {(w, i) for w in range(WORKERS) for i in range(PER_WORKER)}
    _check(Registry(root), expected, WORKERS, PER_WORKER)


def test_threads_in_one_process_do_not_share_a_version(tmp_path):
    """POSIX locks are per process; the registry's thread lock must cover threads too."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("x")
    root = tmp_path / "registry"
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            _publish_many(str(root), str(data), worker, 20)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    _check(Registry(root), {(w, i) for w in range(4) for i in range(20)}, 4, 20)


def _hold_lock(path: str, ready, release) -> None:
    from nemotron.artifacts.fsio import file_lock

    with file_lock(Path(path)):
        ready.set()
        release.wait(30)


def test_a_held_lock_is_a_clear_error_not_a_hang(tmp_path):
    import time

    import pytest

    from nemotron.artifacts.fsio import file_lock
    from nemotron.errors import UserError

    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / ".lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        start = time.monotonic()
        with pytest.raises(UserError, match="timed out"), file_lock(tmp_path / ".lock", timeout=0.5):
            pass
        assert time.monotonic() - start < 5
    finally:
        release.set()
        holder.join(30)
    with file_lock(tmp_path / ".lock", timeout=5):  # free again once the holder is gone
        pass
