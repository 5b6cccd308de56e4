"""The digest is content-based (survives copies and touches) and cheap (samples large files)."""

from __future__ import annotations

import json
import os
import shutil

from nemotron.artifacts.digest import SAMPLE, SMALL_FILE, compute_digest, digest_matches


def _tree(root, big: bytes):
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "shard.bin").write_bytes(big)
    return root


def test_same_content_elsewhere_same_digest_and_touch_does_not_matter(tmp_path):
    big = os.urandom(3 * SAMPLE)
    a = _tree(tmp_path / "a", big)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    os.utime(b / "config.json", (1, 1))
    assert compute_digest(a) == compute_digest(b)
    assert compute_digest(a).startswith("sha256c:")


def test_changes_that_matter_change_the_digest(tmp_path):
    big = bytearray(os.urandom(3 * SAMPLE))
    a = _tree(tmp_path / "a", bytes(big))
    base = compute_digest(a)
    (a / "config.json").write_text('{"a": 2}')  # small file: whole content
    assert compute_digest(a) != base
    (a / "config.json").write_text('{"a": 1}')
    assert compute_digest(a) == base
    big[-1] ^= 0xFF  # last byte of a large file: inside the sampled tail
    (a / "sub" / "shard.bin").write_bytes(bytes(big))
    assert compute_digest(a) != base
    big[-1] ^= 0xFF
    (a / "sub" / "shard.bin").write_bytes(bytes(big[:-1]))  # truncation changes the size
    assert compute_digest(a) != base
    (a / "sub" / "shard.bin").write_bytes(bytes(big))
    assert compute_digest(a) == base
    (a / "sub" / "shard.bin").rename(a / "sub" / "shard2.bin")  # renames count
    assert compute_digest(a) != base


def test_single_file_and_small_threshold(tmp_path):
    f = tmp_path / "one.bin"
    f.write_bytes(b"x" * SMALL_FILE)
    d1 = compute_digest(f)
    f.write_bytes(b"x" * (SMALL_FILE // 2) + b"y" + b"x" * (SMALL_FILE // 2 - 1))
    assert compute_digest(f) != d1  # up to SMALL_FILE every byte counts


def _run_output(root, token: str):
    """What a data prep run leaves: data, a manifest naming its own absolute paths, run bookkeeping."""
    (root / "receipts").mkdir(parents=True)
    (root / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (root / "manifest.json").write_text(json.dumps({"train_path": f"{root}/train.jsonl", "files": ["train.jsonl"]}))
    (root / ".finalized").write_text(token)
    (root / ".lock").write_text("")
    (root / "plan.json").write_text(json.dumps({"mtime_ns": len(token)}))
    (root / "receipts" / "k.json").write_text(json.dumps({"elapsed": token}))
    return root


def test_identical_content_from_two_runs_has_one_digest(tmp_path):
    """The run token, the producer's bookkeeping and the artifact's own location are not content."""
    a = _run_output(tmp_path / "job-1", "local-vm-1-111")
    b = _run_output(tmp_path / "job-2", "slurm-77.0")
    assert compute_digest(a) == compute_digest(b)
    (b / "train.jsonl").write_text('{"prompt": "1+1", "answer": "3"}\n')
    assert compute_digest(a) != compute_digest(b)
    (b / "manifest.json").write_text('{"train_path": "/elsewhere/train.jsonl", "files": {"train.jsonl": 1}}')
    assert compute_digest(b) != compute_digest(a)  # a path outside the artifact is content


def test_digest_matches_checks_only_content_digests(tmp_path):
    a = _run_output(tmp_path / "a", "t")
    recorded = compute_digest(a)
    assert digest_matches(a, recorded) and digest_matches(a, None) and digest_matches(a, "sha256m:old")
    (a / "train.jsonl").write_text("tampered\n")
    assert not digest_matches(a, recorded)
