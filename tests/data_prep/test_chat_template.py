"""SFT rendering with the tokenizer's own chat template, checked against transformers' apply_chat_template.

Templates: the tiny pipeline's shipped one, and two written for these tests in the shapes of Nemotron 3
(``<think></think>`` on every turn, truncated history reasoning, XML tool calls, thinking budget) and
Qwen3 (history reasoning dropped, JSON tool calls, empty think in the generation prompt).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from nemotron.data_prep.chat import (
    BadConversation,
    TemplateEncoder,
    exact_spans,
    has_reasoning,
    parse_record,
    scan_spans,
    training_samples,
)
from nemotron.data_prep.chat_template import ChatRenderer
from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec

from .conftest import TINY

TEMPLATES = Path(__file__).parent / "templates"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}},
]
CONVERSATIONS = {
    "plain": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}],
    "system_multi": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Red."},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "reasoning_content": "91 = 7 * 13.", "content": "No, 91 = 7 x 13."},
    ],
    "reasoning_multi": [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "What is 6 * 7?"},
        {"role": "assistant", "reasoning_content": "6 * 7 = 42.", "content": "42"},
        {"role": "user", "content": "And 6 * 8?"},
        {"role": "assistant", "reasoning_content": "42 + 6 = 48.", "content": "48"},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ],
    "tools": [
        {"role": "system", "content": "Use tools when useful."},
        {"role": "user", "content": "Weather in Paris and Oslo, and 2 + 2?"},
        {
            "role": "assistant",
            "reasoning_content": "Two cities and a sum: three calls.",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"type": "function", "function": {"name": "add", "arguments": {"xs": [2, 2]}}},
            ],
        },
        {"role": "tool", "content": "Paris: 18C, sunny"},
        {"role": "tool", "content": "Oslo: 4C, rain"},
        {"role": "tool", "content": "4"},
        {"role": "assistant", "reasoning_content": "Summarise.", "content": "Paris 18C sunny, Oslo 4C rain; 4."},
    ],
}
KWARGS = [{}, {"enable_thinking": False}, {"enable_thinking": True}, {"enable_thinking": True, "reasoning_budget": 64}]


def tokenizer_dir(tmp: Path, template: str) -> Path:
    d = tmp / "tok"
    d.mkdir(exist_ok=True)
    shutil.copy(TINY / "tokenizer.json", d / "tokenizer.json")
    config = json.loads((TINY / "tokenizer_config.json").read_text())
    config |= {"eos_token": "<|im_end|>", "chat_template": template}
    (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d


def load(d: Path):
    section = type("T", (), {"path": str(d), "kind": "auto", "eod": None, "pattern": None,
                             "special_tokens": [], "add_special_tokens": False})()  # fmt: skip
    return get_tokenizer(resolve_spec(section))


TEMPLATE_TEXTS = {
    "tiny": (TINY / "chat_template.jinja").read_text(),
    "nemotron3": (TEMPLATES / "nemotron3_shape.jinja").read_text(),
    "qwen3": (TEMPLATES / "qwen3_shape.jinja").read_text(),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_TEXTS))
def test_ids_equal_transformers_and_scan_equals_prefix_renders(tmp_path: Path, name: str) -> None:
    from transformers import AutoTokenizer

    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS[name])
    hf = AutoTokenizer.from_pretrained(str(d))
    tok = load(d)
    renderer = ChatRenderer.for_tokenizer(d / "tokenizer.json")
    encoder = TemplateEncoder(renderer, tok)
    checked = 0
    for conv_name, raw in CONVERSATIONS.items():
        conv = parse_record({"messages": copy.deepcopy(raw)}, "messages", "tools", "kw")
        tools = TOOLS if conv_name == "tools" else None
        for kwargs in KWARGS:
            for mode in ("split", "last"):
                for messages, first in training_samples(conv.messages, mode):
                    want = hf.apply_chat_template(messages, tools=tools, tokenize=True, **kwargs)
                    want = want["input_ids"] if isinstance(want, dict) or hasattr(want, "keys") else want
                    text = renderer.render(messages, tools=tools, kwargs=kwargs)
                    assert text == hf.apply_chat_template(messages, tools=tools, tokenize=False, **kwargs)
                    try:
                        ids, mask = encoder.encode(messages, first, tools, kwargs)
                    except BadConversation as err:  # reasoning rendered with thinking off: refused, counted
                        assert err.args[0] == "prompt_mismatch" and kwargs.get("enable_thinking") is False
                        assert has_reasoning(messages[first:])
                        encoder.fallbacks -= 1
                        continue
                    assert ids.tolist() == list(want), (name, conv_name, kwargs)
                    layout = encoder.layout(kwargs)
                    assert layout is not None
                    fast = scan_spans(layout, text, messages, first)
                    try:
                        exact = exact_spans(renderer, text, messages, first, tools, kwargs, layout)
                    except BadConversation:  # a budget on the *last* user turn is not prefix-stable;
                        assert "reasoning_budget" in kwargs  # the one-render scan does not need it to be
                        continue
                    assert fast == exact, conv_name
                    checked += 1
    assert encoder.fallbacks == 0  # every conversation took the linear path
    assert checked >= 30


def trained_text(encoder: TemplateEncoder, tok, messages, first, tools=None, kwargs=None) -> str:
    from tokenizers import Tokenizer

    ids, mask = encoder.encode(messages, first, tools, kwargs or {})
    raw = Tokenizer.from_file(tok.spec.path)
    return raw.decode([int(i) for i, m in zip(ids, mask, strict=True) if m], skip_special_tokens=False)


def test_nemotron_shape_masks_follow_the_reference_convention(tmp_path: Path) -> None:
    """Trained: reasoning, content, tool calls, <|im_end|> and its newline; not: the empty
    <think></think> the template adds, system/user/tool text, the generation prompt."""
    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    tok = load(d)
    encoder = TemplateEncoder(ChatRenderer.for_tokenizer(d), tok)
    conv = parse_record({"messages": CONVERSATIONS["tools"]}, "messages", "tools", "kw")
    [(messages, first)] = training_samples(conv.messages, "split")
    got = trained_text(encoder, tok, messages, first, TOOLS, {"enable_thinking": True})
    assert got == (
        "Two cities and a sum: three calls.\n</think>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_weather>\n<parameter=city>\nOslo\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=add>\n<parameter=xs>\n[2, 2]\n</parameter>\n"
        "</function>\n</tool_call>\n<|im_end|>\nSummarise.\n</think>\nParis 18C sunny, Oslo 4C rain; 4.<|im_end|>\n"
    )
    # reasoning off: the generation prompt holds <think></think>; content and end of turn are trained
    plain = CONVERSATIONS["system_multi"]
    got = trained_text(encoder, tok, plain, 0, None, {"enable_thinking": False})
    assert got == "Blue.<|im_end|>\nRed.<|im_end|>\n"
    # thinking on but a turn without reasoning: its empty <think></think> counts as prompt (reference rule)
    assert trained_text(encoder, tok, plain, 0, None, {"enable_thinking": True}) == got


def test_multi_turn_reasoning_split_trains_each_turn_with_its_reasoning(tmp_path: Path) -> None:
    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    tok = load(d)
    encoder = TemplateEncoder(ChatRenderer.for_tokenizer(d), tok)
    messages = parse_record({"messages": CONVERSATIONS["reasoning_multi"]}, "messages", "t", "k").messages
    samples = training_samples(messages, "split")
    assert [len(m) for m, _ in samples] == [3, 5, 7] and [f for _, f in samples] == [2, 4, 6]
    texts = [trained_text(encoder, tok, m, f, None, {"enable_thinking": True}) for m, f in samples]
    assert texts == ["6 * 7 = 42.\n</think>\n42<|im_end|>\n", "42 + 6 = 48.\n</think>\n48<|im_end|>\n",
                     "You're welcome.<|im_end|>\n"]  # fmt: skip
    [(last, first)] = training_samples(messages, "last")
    assert last == messages and trained_text(encoder, tok, last, first) == texts[-1]
    # without reasoning anywhere, one sample trains every assistant turn
    assert training_samples(CONVERSATIONS["system_multi"], "split") == [(CONVERSATIONS["system_multi"], 0)]


def test_one_render_per_conversation(tmp_path: Path, monkeypatch) -> None:
    """Linear in turns: a 60-turn conversation is rendered once (the probes are cached per kwargs)."""
    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    tok = load(d)
    renderer = ChatRenderer.for_tokenizer(d)
    encoder = TemplateEncoder(renderer, tok)
    encoder.layout({})
    calls = []
    original = renderer.render
    monkeypatch.setattr(renderer, "render", lambda *a, **k: calls.append(1) or original(*a, **k))
    turns = [{"role": r, "content": f"turn {i}"} for i in range(60) for r in ("user", "assistant")]
    ids, mask = encoder.encode(turns, 0, None, {})
    assert len(calls) == 1
    trained = trained_text(encoder, tok, turns, 0)
    assert trained == "".join(f"turn {i}<|im_end|>\n" for i in range(60))


def test_sharegpt_and_json_string_arguments_parse() -> None:
    conv = parse_record(
        {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        "messages", "tools", "kw",
    )  # fmt: skip
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant"]
    call = parse_record({"messages": CONVERSATIONS["tools"]}, "messages", "tools", "kw").messages[2]["tool_calls"][1]
    assert call["function"]["arguments"] == {"city": "Oslo"}


def test_template_exceptions_are_bad_rows_with_the_templates_message(tmp_path: Path) -> None:
    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    encoder = TemplateEncoder(ChatRenderer.for_tokenizer(d), load(d))
    messages = [{"role": "developer", "content": "x"}, *CONVERSATIONS["plain"]]
    with pytest.raises(BadConversation, match="template_error: unexpected role developer"):
        encoder.encode(messages, 0, None, {})
    with pytest.raises(BadConversation, match="bad_tool_arguments"):
        bad_call = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}
        parse_record({"messages": [CONVERSATIONS["plain"][0], bad_call]}, "messages", "t", "k")


def test_turn_start_inside_a_message_takes_the_exact_path(tmp_path: Path) -> None:
    """A literal <|im_start|> in an answer would cut the one-scan span short: such rows are rendered by
    prefix renders instead, and the whole answer is still trained."""
    d = tokenizer_dir(tmp_path, TEMPLATE_TEXTS["nemotron3"])
    tok = load(d)
    encoder = TemplateEncoder(ChatRenderer.for_tokenizer(d), tok)
    answer = "ChatML turns start with <|im_start|>assistant and end with <|im_end|>."
    messages = [{"role": "user", "content": "How do ChatML turns look?"}, {"role": "assistant", "content": answer}]
    assert trained_text(encoder, tok, messages, 0, None, {"enable_thinking": False}) == answer + "<|im_end|>\n"
    assert encoder.fallbacks == 1
