"""Resumability and parallelism: kill -9 mid-run then rerun, workers=2 and Slurm-style ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemotron.data_prep.pretrain import prepare_pretrain

from .conftest import GPT2_TIKTOKEN, PROSE, assert_same_tree, need, pretrain_cfg, read_jsonl, write_jsonl

RUNNER = """
import json, sys
from nemotron.data_prep.pretrain import prepare_pretrain
cfg = json.loads(sys.argv[1])
prepare_pretrain(cfg, sys.argv[2], progress=False)
"""


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """~6 MB: prose_small three times (distinct docs), enough shards to kill in the middle."""
    rows = read_jsonl(need(PROSE))
    out = [{"text": f"[copy {k}] " + r["text"]} for k in range(3) for r in rows]
    return write_jsonl(tmp_path / "input" / "corpus.jsonl", out)


def _cfg(corpus: Path, **over) -> dict:
    return pretrain_cfg(
        [str(corpus)],
        need(GPT2_TIKTOKEN),
        data={"shard_size_mb": 0.08, "valid_fraction": 0.02, "test_fraction": 0.01},
        **over,
    )


def _receipts(out: Path) -> set[str]:
    return {p.stem for p in (out / "receipts").glob("*.json")} if (out / "receipts").exists() else set()


def test_kill9_then_rerun_redoes_only_unfinished_and_is_byte_identical(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    cfg = _cfg(corpus)
    reference = prepare_pretrain(cfg, out, progress=False)
    total = reference["num_shards"]
    assert total >= 40
    out.rename(tmp_path / "reference")  # same output path for both runs: blend.json holds absolute prefixes

    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(cfg), str(out)],
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    deadline = time.monotonic() + 120
    while len(_receipts(out)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _receipts(out)
    assert 5 <= len(done_before) < total, "the kill must land mid-run"
    assert not (out / "manifest.json").exists() and not (out / "blend.json").exists()

    resumed = prepare_pretrain(cfg, out, progress=False)
    assert resumed["run"]["shards_reused"] == len(done_before)
    assert resumed["run"]["shards_run"] == total - len(done_before)
    assert_same_tree(tmp_path / "reference", out)
    assert not list(out.rglob("*.tmp.*"))  # killed writers' temp files were cleaned up

    again = prepare_pretrain(cfg, out, progress=False)  # a complete output is not redone
    assert again["run"]["shards_run"] == 0 and again["plan_hash"] == reference["plan_hash"]


def test_workers_and_ranks_give_identical_output(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    one = prepare_pretrain(_cfg(corpus, workers=1), out, progress=False)
    out.rename(tmp_path / "workers1")

    two = prepare_pretrain(_cfg(corpus, workers=2), out, progress=False)
    assert two["run"]["shards_run"] == one["num_shards"]
    assert_same_tree(tmp_path / "workers1", out)
    out.rename(tmp_path / "workers2")

    # Two Slurm tasks: each does shards i % 2 == rank; whichever finishes last finalizes.
    first = prepare_pretrain(_cfg(corpus), out, progress=False, rank=1, world_size=2)
    assert not first["finalized"] and not first["publish"]
    assert first["run"]["shards_run"] == one["num_shards"] // 2
    last = prepare_pretrain(_cfg(corpus), out, progress=False, rank=0, world_size=2)
    assert last["finalized"] and last["publish"]
    assert last["run"]["shards_run"] == one["num_shards"] - one["num_shards"] // 2
    assert_same_tree(tmp_path / "workers1", out)


def test_changed_settings_into_a_used_output_dir_are_refused(tmp_path: Path) -> None:
    """Another plan never overwrites a non-empty output_dir (it may be a published artifact's data)."""
    from nemotron.errors import UserError

    src = write_jsonl(tmp_path / "a.jsonl", [{"text": f"document {i} " * 20} for i in range(200)])
    out = tmp_path / "out"
    cfg = pretrain_cfg([str(src)], need(GPT2_TIKTOKEN), data={"shard_size_mb": 0.01})
    first = prepare_pretrain(cfg, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    cfg["data"]["valid_fraction"] = 0.1
    with pytest.raises(UserError, match="holds data prep output of another plan"):
        prepare_pretrain(cfg, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    same = pretrain_cfg([str(src)], need(GPT2_TIKTOKEN), data={"shard_size_mb": 0.01})
    assert prepare_pretrain(same, out, progress=False)["plan_hash"] == first["plan_hash"]  # the same plan resumes
