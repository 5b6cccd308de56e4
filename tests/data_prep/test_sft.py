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
from nemotron.data_prep.packed_format import sequences as mb_sequences
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
    """(ids, token-aligned mask) per sequence, read with Megatron-Bridge's slicing rule: the label
    ``input_ids[s+1:e][j]`` is trained iff ``loss_mask[s:e-1][j]``; the first token is never a label."""
    for pack in packs:
        for seq in mb_sequences(pack["input_ids"], pack["loss_mask"], pack["seq_start_id"]):
            ids = seq.input_ids.tolist()
            yield ids, [0, *seq.loss_mask.tolist()]


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
        # the reference recipe's convention: content, <|im_end|> and the newline after it
        target = "".join(m["content"] + "<|im_end|>\n" for m in chat["messages"] if m["role"] == "assistant")
        want[(text, target)] += 1
    for pack in packs:
        assert len(pack["input_ids"]) == len(pack["loss_mask"]) <= 256
        starts = pack["seq_start_id"]
        assert starts[0] == 0 and all(a < b for a, b in zip(starts, starts[1:], strict=False))
    for pack in packs:  # stored label-aligned: each sequence's last entry gates nothing
        ends = [*pack["seq_start_id"][1:], len(pack["input_ids"])]
        assert all(pack["loss_mask"][e - 1] == 0 for e in ends)
    for ids, mask in sequences(packs):
        text = tok.decode(ids, skip_special_tokens=False)
        trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)
        assert ids == tok.encode(text).ids  # exactly the tokens of the fully rendered conversation
        seen[(text, trained)] += 1
    assert seen == want  # every conversation once; trained tokens = assistant contents + <|im_end|>\n
    padding = sum(256 - len(p["input_ids"]) for p in packs) / (256 * len(packs))
    assert manifest["splits"]["train"]["padding_fraction"] == pytest.approx(padding, abs=1e-6)
    assert manifest["pad_id"] == 3 and manifest["pack_size"] == 256


def test_tiny_chats_render_with_the_shipped_template() -> None:
    """The tiny chain's data prep and model read the same template file (chat_template.jinja)."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(TINY))
    chat = read_jsonl(TINY / "chats.jsonl")[1]["messages"]
    assert hf.apply_chat_template(chat, tokenize=False) == "".join(CHATML.format(**m) for m in chat)


def test_addition_turns_are_single_targets(tmp_path: Path) -> None:
    """The tiny RL prompt format: user 'What is A + B?' -> assistant 'C' is trained on 'C<|im_end|>'."""
    spec = resolve_spec(type("T", (), {"path": str(TINY / "tokenizer.json"), "kind": "auto", "eod": None,
                                       "pattern": None, "special_tokens": [], "add_special_tokens": False})())  # fmt: skip
    tok = get_tokenizer(spec)
    messages = [{"role": "user", "content": "What is 7 + 8?"}, {"role": "assistant", "content": "15"}]
    ids, mask = tokenize_conversation(tok, messages, ChatTemplate())  # the per-turn fallback
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
        tokenizer={
            "special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            "chat_template": str(TINY / "chat_template.jinja"),  # a template file for a tiktoken tokenizer
        },
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
    agentic = [  # rows the old per-turn renderer rejected: reasoning, tool calls, tool results
        {"messages": [{"role": "user", "content": "What is 2 + 2?"},
                      {"role": "assistant", "reasoning_content": "2 + 2 = 4", "content": "4"}]},
        {"messages": [{"role": "user", "content": "Add 2 and 2."},
                      {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 2}"}}]},
                      {"role": "tool", "content": "4"}, {"role": "assistant", "content": "4"}],
         "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}]},
    ]  # fmt: skip
    long = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok " * 50}]}
    src = write_jsonl(tmp_path / "chats.jsonl", good + bad + agentic + [long])
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
    assert manifest["num_sequences"] == 32 and manifest["num_conversations"] == 33  # incl. the truncated one
    assert manifest["run"]["docs_per_s"] > 0 and manifest["run"]["tokens_per_s"] > 0  # conversations/s, tokens/s
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
        tokenizer={"special_tokens": ["<|endoftext|>"], "chat_template": "per_turn"},  # no <|im_end|> token
    )
    with pytest.raises(UserError, match="not a single token"):
        prepare_sft(cfg, tmp_path / "out", progress=False)


def test_megatron_bridge_reader_trains_exactly_the_assistant_tokens(tmp_path: Path) -> None:
    """Data prep with a Nemotron-3-shaped template over OpenAI (JSONL, Parquet) and ShareGPT rows with
    reasoning, tool calls and tool results; the Parquet read with Megatron-Bridge's slicing rule
    (labels input_ids[s+1:e] gated by loss_mask[s:e-1]) must train exactly the tokens transformers
    puts between each turn's generation prompt and its end (the reference recipe's prefix renders).
    The old token-aligned mask fails this: it trains the token after each turn, not the first one."""
    import pyarrow as pa
    from transformers import AutoTokenizer

    from .test_chat_template import CONVERSATIONS, TEMPLATE_TEXTS, TOOLS, tokenizer_dir

    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    rows = [{"messages": m} for name, m in CONVERSATIONS.items() if name != "tools"]
    sharegpt = {"conversations": [{"from": {"user": "human", "assistant": "gpt"}[m["role"]], "value": m["content"]}
                                  for m in CONVERSATIONS["plain"]]}  # fmt: skip
    write_jsonl(tmp_path / "in" / "chats.jsonl", [*rows, sharegpt])
    tool_msgs = json.loads(json.dumps(CONVERSATIONS["tools"]))
    for call in tool_msgs[2]["tool_calls"]:  # Parquet datasets store arguments as JSON strings
        call["function"]["arguments"] = json.dumps(call["function"]["arguments"]) if isinstance(
            call["function"]["arguments"], dict) else call["function"]["arguments"]  # fmt: skip
    table = pa.Table.from_pylist([{"messages": tool_msgs, "tools": json.dumps(TOOLS)}])  # schemas vary: JSON text
    pq.write_table(table, tmp_path / "in" / "agent.parquet")
    cfg = sft_cfg([str(tmp_path / "in" / "*")], d / "tokenizer.json", 1024)
    manifest = prepare_sft(cfg, tmp_path / "out", progress=False)
    assert manifest["bad_rows"]["total"] == 0 and manifest["truncated"] == 0
    assert manifest["loss_mask_alignment"] == "label"
    got = Counter()
    for pack in load_packs(tmp_path / "out", manifest):
        for seq in mb_sequences(pack["input_ids"], pack["loss_mask"], pack["seq_start_id"]):
            got[(tuple(seq.input_ids.tolist()), tuple(seq.trained_labels().tolist()))] += 1

    hf = AutoTokenizer.from_pretrained(str(d))
    want = Counter()
    sources = [(r["messages"], None) for r in rows] + [(CONVERSATIONS["plain"], None), (CONVERSATIONS["tools"], TOOLS)]
    for messages, tools in sources:
        from nemotron.data_prep.chat import parse_record, training_samples

        messages = parse_record({"messages": messages}, "messages", "t", "k").messages
        kw = {"enable_thinking": any(m.get("reasoning_content") for m in messages)}
        for sample, first in training_samples(messages, "split"):
            text = hf.apply_chat_template(sample, tools=tools, tokenize=False, **kw)
            enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
            spans = []
            for i in range(first, len(sample)):
                if sample[i]["role"] != "assistant":
                    continue
                prompt = hf.apply_chat_template(
                    sample[:i], tools=tools, add_generation_prompt=True, tokenize=False, **kw
                )
                if not text.startswith(prompt):  # the reference's empty-reasoning rule, verbatim
                    prompt = hf.apply_chat_template(sample[:i], tools=tools, tokenize=False, **kw)
                    prompt += "<|im_start|>assistant\n<think></think>"
                end = hf.apply_chat_template(sample[: i + 1], tools=tools, tokenize=False, **kw)
                assert text.startswith(prompt) and text.startswith(end)
                spans.append((len(prompt), len(end)))
            trained = [t for t, (a, _) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
                       if any(s <= a < e for s, e in spans)]  # fmt: skip
            want[(tuple(enc["input_ids"]), tuple(trained))] += 1
    assert got == want
