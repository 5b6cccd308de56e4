"""RL data prep: train/val JSONL split by content hash, manifest with checksums, bad rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nemotron.data_prep.rl import prepare_rl
from nemotron.errors import UserError

from .conftest import GSM, TINY, assert_same_tree, need, read_jsonl, write_jsonl


def rl_cfg(inputs, **data) -> dict:
    return {"output": {"name": "test-rl-data"}, "data": {"inputs": inputs, **data}, "workers": 1}


def test_tiny_prompts_split_and_manifest(tmp_path: Path) -> None:
    src = TINY / "rl_prompts.jsonl"
    assert src.exists(), f"{src} is a shipped tiny asset"
    manifest = prepare_rl(rl_cfg([str(src)], valid_fraction=0.1), tmp_path / "out", progress=False)
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    val = read_jsonl(tmp_path / "out" / "val.jsonl")
    source = read_jsonl(src)
    assert len(train) + len(val) == len(source) == manifest["num_train"] + manifest["num_val"]
    assert 3 <= len(val) <= 20
    assert {(r["prompt"], r["answer"]) for r in train + val} == {(r["prompt"], r["answer"]) for r in source}
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert all(set(r) == {"id", "prompt", "answer"} for r in train + val)
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["kind"] == "rl-data" and on_disk["train"] == "train.jsonl" and on_disk["val"] == "val.jsonl"
    for name, info in on_disk["files"].items():
        data = (tmp_path / "out" / name).read_bytes()
        assert info == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_gsm_sharded_workers_keep_fields(tmp_path: Path) -> None:
    cfg = rl_cfg([str(need(GSM))], valid_fraction=0.05, shard_size_mb=0.3, keep_fields=["solution_cot"])
    one = prepare_rl(cfg, tmp_path / "out", progress=False)
    assert one["num_shards"] >= 8 and one["num_train"] + one["num_val"] == 5000
    assert 170 <= one["num_val"] <= 330
    first = read_jsonl(tmp_path / "out" / "train.jsonl")[0]
    assert set(first) == {"id", "prompt", "answer", "solution_cot"}
    (tmp_path / "out").rename(tmp_path / "one")
    prepare_rl(cfg | {"workers": 2}, tmp_path / "out", progress=False)
    assert_same_tree(tmp_path / "one", tmp_path / "out")


def test_duplicates_stay_in_one_split_and_bad_rows(tmp_path: Path) -> None:
    rows = [{"prompt": f"What is {i} + 1?", "answer": i + 1, "uid": f"q{i}"} for i in range(200)]
    rows += rows[:50]  # duplicates
    lines = [json.dumps(r) for r in rows] + [
        '{"prompt": "x"',
        json.dumps({"prompt": "no answer"}),
        json.dumps({"prompt": " ", "answer": "1"}),
    ]
    src = write_jsonl(tmp_path / "p.jsonl", lines)
    manifest = prepare_rl(
        rl_cfg([str(src)], valid_fraction=0.2, id_field="uid", max_bad_fraction=0.05), tmp_path / "out", progress=False
    )
    assert manifest["bad_rows"]["by_reason"] == {"empty_text": 1, "invalid_json": 1, "missing_field": 1}
    train = read_jsonl(tmp_path / "out" / "train.jsonl")
    val = read_jsonl(tmp_path / "out" / "val.jsonl")
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in val}
    assert all(isinstance(r["answer"], str) and r["id"].startswith("q") for r in train + val)
    with pytest.raises(UserError, match="max_bad_fraction=0.001"):
        prepare_rl(rl_cfg([str(src)], max_bad_fraction=0.001), tmp_path / "o2", progress=False)
    with pytest.raises(UserError, match="weights apply to pretrain blends only"):
        prepare_rl(rl_cfg([{"path": str(src), "weight": 1.0}]), tmp_path / "o3", progress=False)


NEMO_GYM = json.loads((Path(__file__).parents[2] / "recipes/super3/megatron/api_reference/nemo_rl.json").read_text())[
    "nemo_gym_row"
]


def _gym_problems(row: dict) -> list[str]:
    """What NeMo-Gym (facts recorded at its super-v3 tree) would reject in one row."""
    problems = []
    for dotted in NEMO_GYM["required"]:
        node = row
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not node:
            problems.append(f"missing {dotted}")
    messages = (row.get("responses_create_params") or {}).get("input")
    if isinstance(messages, list) and not all(set(NEMO_GYM["message_keys"]) <= set(m) for m in messages):
        problems.append("message without role/content")
    if (row.get("agent_ref") or {}).get("type") not in (None, NEMO_GYM["agent_ref_type"]):
        problems.append("agent_ref.type")
    return problems


def test_nemo_gym_rows_built_and_passed_through(tmp_path: Path) -> None:
    """Defect 4: `data prep rl` (format nemo_gym) writes rows NeMo-Gym accepts, the agent per dataset."""
    math = tmp_path / "math.jsonl"
    write_jsonl(math, [{"prompt": f"What is {i} + 2?", "answer": i + 2} for i in range(40)])
    ready = tmp_path / "tools.jsonl"
    rows = [
        {
            "responses_create_params": {"input": [{"role": "user", "content": f"call tool {i}"}], "tools": []},
            "agent_ref": {"type": "responses_api_agents", "name": "tool_agent"},
            "expected": i,
        }
        for i in range(20)
    ]
    write_jsonl(ready, rows + [{"responses_create_params": {"input": []}}, {"responses_create_params": {"input": "x"}}])
    inputs = [{"path": str(math), "agent": "math_with_judge_simple_agent"}, {"path": str(ready)}]
    template = "Solve the following math problem. Put the answer inside \\boxed{}.\n\n{prompt}"  # {prompt} is replaced, other braces stay
    manifest = prepare_rl(
        rl_cfg(inputs, format="nemo_gym", prompt_template=template, valid_fraction=0.2, max_bad_fraction=0.1),
        tmp_path / "out",
        progress=False,
    )
    out = read_jsonl(tmp_path / "out" / "train.jsonl") + read_jsonl(tmp_path / "out" / "val.jsonl")
    # 40 built + 20 passed through; the empty input and the agent-less row are bad rows
    assert (
        len(out) == 60
        and manifest["row_format"] == "nemo_gym"
        and manifest["agents"] == ["math_with_judge_simple_agent"]
    )
    assert [p for r in out for p in _gym_problems(r)] == []
    built = [r for r in out if r["agent_ref"]["name"] == "math_with_judge_simple_agent"]
    assert len(built) == 40 and all("\\boxed{}" in r["responses_create_params"]["input"][0]["content"] for r in built)
    assert {r["expected_answer"] for r in built} == {str(i + 2) for i in range(40)}
    passed = [r for r in out if r["agent_ref"]["name"] == "tool_agent"]
    assert sorted(r["expected"] for r in passed) == list(range(20)) and all(
        "tools" in r["responses_create_params"] for r in passed
    )


def test_nemo_gym_row_without_agent_is_a_bad_row(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    write_jsonl(src, [{"prompt": "p", "answer": "a"}])
    with pytest.raises(UserError):
        prepare_rl(rl_cfg([str(src)], format="nemo_gym", max_bad_fraction=0.0), tmp_path / "out", progress=False)


def test_agent_needs_the_nemo_gym_format(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    write_jsonl(src, [{"prompt": "p", "answer": "a"}])
    with pytest.raises(Exception, match="nemo_gym"):
        prepare_rl(rl_cfg([{"path": str(src), "agent": "x"}]), tmp_path / "out", progress=False)


def test_tiny_gym_config_rows_are_read_by_the_tiny_grpo(tmp_path: Path) -> None:
    """The CPU chain reads what the GPU chain reads: NeMo-Gym rows from `data prep rl -c tiny_gym`."""
    import sys

    from nemotron.config.loader import load_stage_config
    from nemotron.paths import RECIPES_DIR
    from nemotron.pipeline.stages import get_stage

    sys.path.insert(0, str(RECIPES_DIR))
    from super3.tiny.rl import read_prompts

    cfg = load_stage_config(get_stage("data_prep.rl"), "tiny_gym").data
    manifest = prepare_rl(cfg, tmp_path / "out", progress=False)
    gym_rows = read_jsonl(tmp_path / "out" / "train.jsonl")
    assert manifest["row_format"] == "nemo_gym" and [p for r in gym_rows for p in _gym_problems(r)] == []
    assert {r["agent_ref"]["name"] for r in gym_rows} == {"math_simple_agent"}
    rows = read_prompts(tmp_path / "out" / "train.jsonl")
    source = {(r["prompt"], str(r["answer"])) for r in read_jsonl(TINY / "rl_prompts.jsonl")}
    assert len(rows) == len(gym_rows) and {(r["prompt"], r["answer"]) for r in rows} <= source
