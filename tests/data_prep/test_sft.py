"""SFT data prep: chat template, assistant-only loss mask, packing into Parquet, padding report."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nemotron.config.schemas.data_prep import ChatTemplate
from nemotron.data_prep.chat import tokenize_conversation
from nemotron.data_prep.packing import best_fit_decreasing
from nemotron.data_prep.sft import prepare_sft
from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec
from nemotron.errors import UserError

from .conftest import FAQ, GPT2_TIKTOKEN, TINY, need, read_jsonl, write_jsonl

CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"


def sft_cfg(inputs, tokenizer_path: Path, size: int, **over) -> dict:
    data = {"inputs": inputs, "valid_fraction": 0.0, "max_bad_fraction": 0.0}
    data.update(over.pop("data", {}))
    tok = {"path": str(tokenizer_path)}
    tok.update(over.pop("tokenizer", {}))
    return {
        "output": {"name": "test-sft-data"},
        "data": data,
        "tokenizer": tok,
        "pack": {"size": size},
        "workers": 1,
    } | over


def load_packs(out: Path, manifest: dict, split: str = "train") -> list[dict]:
    rows = []
    for rel in manifest["splits"][split]["files"]:
        rows.extend(pq.read_table(out / rel).to_pylist())
    return rows


def sequences(packs: list[dict]):
    for pack in packs:
        ids, mask, starts = pack["input_ids"], pack["loss_mask"], pack["seq_start_id"]
        ends = starts[1:] + [len(ids)]
        for a, b in zip(starts, ends, strict=True):
            yield ids[a:b], mask[a:b]


def test_tiny_chats_mask_only_assistant_turns(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    chats = read_jsonl(TINY / "chats.jsonl")
    cfg = sft_cfg([str(TINY / "chats.jsonl")], TINY / "tokenizer.json", 256, data={"shard_size_mb": 0.2})
    manifest = prepare_sft(cfg, tmp_path / "out", progress=False)
    assert manifest["kind"] == "sft-data" and manifest["num_sequences"] == len(chats)
    packs = load_packs(tmp_path / "out", manifest)
    assert len(packs) == manifest["splits"]["train"]["packs"]
    tok = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    seen, want = Counter(), Counter()
    for chat in chats:
        text = "".join(CHATML.format(**m) for m in chat["messages"])
        target = "".join(m["content"] + "<|im_end|>" for m in chat["messages"] if m["role"] == "assistant")
        want[(text, target)] += 1
    for pack in packs:
        assert len(pack["input_ids"]) == len(pack["loss_mask"]) <= 256
        starts = pack["seq_start_id"]
        assert starts[0] == 0 and all(a < b for a, b in zip(starts, starts[1:], strict=False))
    for ids, mask in sequences(packs):
        text = tok.decode(ids, skip_special_tokens=False)
        trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
        assert ids == tok.encode(text).ids  # exactly the tokens of the fully rendered conversation
        seen[(text, trained)] += 1
    assert seen == want  # every conversation once; trained tokens = assistant contents + <|im_end|>
    padding = sum(256 - len(p["input_ids"]) for p in packs) / (256 * len(packs))
    assert manifest["splits"]["train"]["padding_fraction"] == pytest.approx(padding, abs=1e-6)
    assert manifest["pad_id"] == 3 and manifest["pack_size"] == 256


def test_addition_turns_are_single_targets(tmp_path: Path) -> None:
    """The tiny RL prompt format: user 'What is A + B?' -> assistant 'C' is trained on 'C<|im_end|>'."""
    spec = resolve_spec(type("T", (), {"path": str(TINY / "tokenizer.json"), "kind": "auto", "eod": None,
                                       "pattern": None, "special_tokens": [], "add_special_tokens": False})())  # fmt: skip
    tok = get_tokenizer(spec)
    messages = [{"role": "user", "content": "What is 7 + 8?"}, {"role": "assistant", "content": "15"}]
    ids, mask = tokenize_conversation(tok, messages, ChatTemplate())
    trained = [int(i) for i, m in zip(ids, mask, strict=True) if m]
    assert trained == tok.encode_with_offsets("15<|im_end|>")[0]
    adds = [m for c in read_jsonl(TINY / "chats.jsonl") for m in c["messages"] if m["content"].startswith("What is ")]
    pairs = {m["content"] for m in adds if "+" in m["content"]}
    assert len(pairs) == 100 and len(adds) > 1000  # every A + B with A, B in 0..9, many times


def test_template_rendered_once_per_conversation(monkeypatch) -> None:
    spec = resolve_spec(type("T", (), {"path": str(TINY / "tokenizer.json"), "kind": "auto", "eod": None,
                                       "pattern": None, "special_tokens": [], "add_special_tokens": False})())  # fmt: skip
    tok = get_tokenizer(spec)
    calls = []
    original = tok.encode_with_offsets
    monkeypatch.setattr(tok, "encode_with_offsets", lambda text: calls.append(text) or original(text))
    turns = [{"role": r, "content": f"turn {i}"} for i in range(60) for r in ("user", "assistant")]
    ids, mask = tokenize_conversation(tok, turns, ChatTemplate())
    assert len(calls) == 1  # not once per prefix
    assert sum(mask) == len(tok.encode_with_offsets("".join(f"turn {i}<|im_end|>" for i in range(60)))[0])


def _faq_multiturn(n_passes: int) -> list[dict]:
    qa = [c["messages"] for c in read_jsonl(need(FAQ))]
    rng = random.Random(0)
    out = []
    for _ in range(n_passes):
        order = list(range(len(qa)))
        rng.shuffle(order)
        i = 0
        while i < len(order):
            k = rng.randint(1, 4)
            msgs = [{"role": "system", "content": "Answer questions about Python."}]
            for j in order[i : i + k]:
                msgs += qa[j]
            out.append({"messages": msgs})
            i += k
    return out


def test_padding_at_4096_on_multiturn_chats_is_at_most_2_percent(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "faq_multi.jsonl", _faq_multiturn(3))
    cfg = sft_cfg(
        [str(src)],
        need(GPT2_TIKTOKEN),
        4096,
        tokenizer={"special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]},
        data={"shard_size_mb": 64},
    )
    manifest = prepare_sft(cfg, tmp_path / "out", progress=False)
    packs = load_packs(tmp_path / "out", manifest)
    assert len(packs) >= 60
    assert manifest["padding_fraction"] <= 0.02, manifest["padding_fraction"]
    assert manifest["packing_efficiency"] == pytest.approx(1 - manifest["padding_fraction"])
    # <|im_start|> / <|im_end|> are single special tokens of the tiktoken encoding (ids after the ranks).
    assert {50257, 50258} <= set(packs[0]["input_ids"])


def test_best_fit_decreasing_properties() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(1, 600) for _ in range(3000)]
    packs = best_fit_decreasing(lengths, 1024)
    assert sorted(i for p in packs for i in p) == list(range(3000))
    assert all(sum(lengths[i] for i in p) <= 1024 for p in packs)
    lower_bound = -(-sum(lengths) // 1024)
    assert len(packs) <= lower_bound * 1.02 + 1
    with pytest.raises(ValueError):
        best_fit_decreasing([2000], 1024)


def test_bad_conversations_counted_and_truncation(tmp_path: Path) -> None:
    good = read_jsonl(TINY / "chats.jsonl")[:30]
    bad = [
        {"conversation": []},  # missing field
        {"messages": "hello"},  # not a list
        {"messages": [{"role": "user", "content": "hi"}]},  # no assistant turn
        {"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]},
    ]
    long = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok " * 50}]}
    src = write_jsonl(tmp_path / "chats.jsonl", good + bad + [long])
    cfg = sft_cfg([str(src)], TINY / "tokenizer.json", 256, data={"max_bad_fraction": 0.2})
    manifest = prepare_sft(cfg, tmp_path / "out", progress=False)
    assert manifest["bad_rows"]["by_reason"] == {
        "bad_message": 1,
        "missing_field": 1,
        "no_trained_turn": 1,
        "not_a_conversation": 1,
        "unknown_role": 1,
    }
    # The long one: its first 256 tokens are all user text, so truncation leaves nothing to train on.
    assert manifest["truncated"] == 1 and manifest["dropped_no_target"] == 1
    assert manifest["num_sequences"] == 30
    with pytest.raises(UserError, match="above data.max_bad_fraction=0.1"):
        prepare_sft(sft_cfg([str(src)], TINY / "tokenizer.json", 256, data={"max_bad_fraction": 0.1}), tmp_path / "o2")


def test_sft_workers_equal_and_valid_split(tmp_path: Path) -> None:
    cfg = sft_cfg(
        [str(TINY / "chats.jsonl")], TINY / "tokenizer.json", 256, data={"shard_size_mb": 0.1, "valid_fraction": 0.1}
    )
    one = prepare_sft(cfg, tmp_path / "out", progress=False)
    (tmp_path / "out").rename(tmp_path / "one")
    two = prepare_sft(cfg | {"workers": 2}, tmp_path / "out", progress=False)
    assert one["plan_hash"] == two["plan_hash"]
    from .conftest import assert_same_tree

    assert_same_tree(tmp_path / "one", tmp_path / "out")
    valid = two["splits"]["valid"]["sequences"]
    assert 120 <= valid <= 280 and valid + two["splits"]["train"]["sequences"] == 2000
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["splits"]["valid"]["files"]


def test_template_marker_must_be_one_token(tmp_path: Path) -> None:
    cfg = sft_cfg(
        [str(TINY / "chats.jsonl")],
        need(GPT2_TIKTOKEN),
        256,
        tokenizer={"special_tokens": ["<|endoftext|>"]},  # no <|im_end|> special token
    )
    with pytest.raises(UserError, match="not a single token"):
        prepare_sft(cfg, tmp_path / "out", progress=False)
