"""Benchmark ``data prep sft``: conversations/s and tokens/s through the chat-template path, padding at 4096.

    .venv/bin/python benchmarks/bench_data_prep_sft.py --conversations 20000 --workers 2 [--json out.json]

Builds synthetic multi-turn chats from real Q/A text (the shared FAQ set when present, else the tiny
chats): a system prompt, 1-6 user turns, a third of the assistant turns with reasoning, a fifth of the
chats with a tool call and tool result. Renders them with the shipped tiny chat template (Nemotron 3's
shape) through ``prepare_sft`` at pack size 4096 and reports wall-clock conversations/s and tokens/s
(planning and finalization included), the padding fraction, and, for scale, how long the compiled
template alone and transformers' ``apply_chat_template`` take per conversation (so one can see
whether Jinja rendering is the bottleneck). Numbers are documented in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "super3" / "assets" / "tiny"
FAQ = REPO.parent / "shared" / "data" / "sft" / "faq_qa.jsonl"
TOOLS = [{"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object", "properties": {}}}}]


def qa_pairs() -> list[tuple[str, str]]:
    source = FAQ if FAQ.exists() else TINY / "chats.jsonl"
    pairs = []
    for line in source.read_text().splitlines():
        msgs = json.loads(line)["messages"]
        pairs += [(q["content"], a["content"]) for q, a in zip(msgs[::2], msgs[1::2], strict=False)]
    return pairs


def make_chats(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pairs = qa_pairs()
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": "Answer questions about Python."}]
        tools = None
        for _ in range(rng.randint(1, 6)):
            q, a = rng.choice(pairs)
            msgs.append({"role": "user", "content": q})
            if rng.random() < 0.2:
                tools = TOOLS
                call = {"type": "function", "function": {"name": "search_docs", "arguments": {"query": q[:40]}}}
                msgs.append({"role": "assistant", "content": "", "tool_calls": [call]})
                msgs.append({"role": "tool", "content": a[:200]})
            reply = {"role": "assistant", "content": a}
            if rng.random() < 0.33:
                reply["reasoning_content"] = f"The user asks: {q[:80]}"
            msgs.append(reply)
        out.append({"messages": msgs} | ({"tools": tools} if tools else {}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pack-size", type=int, default=4096)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from nemotron.data_prep.chat_template import ChatRenderer
    from nemotron.data_prep.sft import prepare_sft

    chats = make_chats(args.conversations)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "chats.jsonl"
        src.write_text("".join(json.dumps(c) + "\n" for c in chats))
        cfg = {
            "output": {"name": "bench-sft"},
            "data": {"inputs": [str(src)], "valid_fraction": 0.0, "max_bad_fraction": 0.0, "shard_size_mb": 4},
            "tokenizer": {"path": str(TINY / "tokenizer.json")},
            "pack": {"size": args.pack_size},
            "workers": args.workers,
        }
        start = time.perf_counter()
        meta = prepare_sft(cfg, Path(tmp) / "out", progress=False)
        wall = time.perf_counter() - start

    renderer = ChatRenderer.for_tokenizer(TINY)
    sample = chats[:2000]
    t0 = time.perf_counter()
    for c in sample:
        renderer.render(c["messages"], tools=c.get("tools"))
    ours = (time.perf_counter() - t0) / len(sample)
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(TINY))
    t0 = time.perf_counter()
    for c in sample:
        hf.apply_chat_template(c["messages"], tools=c.get("tools"), tokenize=False)
    theirs = (time.perf_counter() - t0) / len(sample)
    result = {
        "conversations": meta["num_conversations"],
        "samples": meta["num_sequences"],
        "tokens": meta["num_tokens"],
        "workers": args.workers,
        "wall_s": round(wall, 2),
        "conversations_per_s": round(meta["num_conversations"] / wall, 1),
        "tokens_per_s": round(meta["num_tokens"] / wall, 1),
        "padding_fraction": meta["padding_fraction"],
        "template_fallbacks": meta["template_fallbacks"],
        "render_us_per_conversation": round(ours * 1e6, 1),
        "transformers_apply_chat_template_us_per_conversation": round(theirs * 1e6, 1),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
