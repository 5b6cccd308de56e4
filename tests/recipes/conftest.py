"""Fixtures for tests/recipes, written in the real data formats (see recipes_support)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemotron.artifacts.model import Artifact

from .recipes_support import SFT_ROWS, artifact, write_indexed, write_packed_parquet


@pytest.fixture
def pretrain_data(tmp_path: Path) -> Artifact:
    """A pretrain-data artifact: two train shards (relative prefixes), one valid shard, blend.json."""
    root = tmp_path / "pretrain-data"
    (root / "shards").mkdir(parents=True)
    write_indexed(root / "shards" / "train_0", [[1, 2, 3, 0], [4, 5, 0]])
    write_indexed(root / "shards" / "train_1", [[6, 7, 8, 9, 0]])
    write_indexed(root / "shards" / "valid_0", [[10, 11, 0]])
    blend = {"train": [0.7, "shards/train_0", 0.3, "shards/train_1"], "valid": [1.0, "shards/valid_0"], "test": []}
    (root / "blend.json").write_text(json.dumps(blend))
    # data prep's shape (nemotron.data_prep.common.tokenizer_summary): the tokenizer *file*
    tok = {"path": str(tmp_path / "tok" / "tokenizer.json"), "kind": "hf", "sha256": "0" * 64, "vocab_size": 50257}
    meta = {"tokenizer": tok}
    return artifact("pretrain-data", "pretrain-data", root, meta)


@pytest.fixture
def sft_data(tmp_path: Path) -> Artifact:
    root = tmp_path / "sft-data"
    write_packed_parquet(root / "splits" / "train" / "shard_000.parquet", SFT_ROWS)
    write_packed_parquet(root / "splits" / "valid" / "shard_000.parquet", SFT_ROWS[:1])
    tok = {"path": str(tmp_path / "tok" / "tokenizer.json"), "kind": "hf", "sha256": "0" * 64, "vocab_size": 131072}
    return artifact("sft-data", "sft-data", root, {"pack_size": 4096, "tokenizer": tok})


@pytest.fixture
def rl_data(tmp_path: Path) -> Artifact:
    root = tmp_path / "rl-data"
    root.mkdir()
    rows = [{"prompt": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(5)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    (root / "manifest.json").write_text(json.dumps({"train": 5, "val": 3}))
    return artifact("rl-data", "rl-data", root, {})


@pytest.fixture
def gym_data(tmp_path: Path) -> Artifact:
    """An rl-data artifact of NeMo-Gym rows, as `data prep rl` (data.format=nemo_gym) publishes it."""
    root = tmp_path / "gym-data"
    root.mkdir()
    rows = [
        {
            "responses_create_params": {"input": [{"role": "user", "content": f"What is {i} + 1?"}]},
            "expected_answer": str(i + 1),
            "agent_ref": {"type": "responses_api_agents", "name": "math_with_judge_simple_agent"},
        }
        for i in range(5)
    ]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:3]))
    return artifact("rl-data", "rl-data", root, {"row_format": "nemo_gym"})
