"""Conversations -> training samples -> (token ids, loss mask), with the model's own chat template.

Which tokens are trained (the NVIDIA reference recipe's convention, NVIDIA-NeMo/Nemotron
``src/nemotron/data_prep/core/chat_template.py`` at commit 77f2b8d): an assistant turn is trained from
the end of the generation prompt (``render(messages[:i], add_generation_prompt=True)``) to the end of
the turn (``render(messages[:i+1])``). So the model learns its reasoning, content, tool calls, the
end-of-turn token and the newline the template writes after it; nothing of system, user or tool turns.
When a turn has no reasoning but the template writes an empty ``<think></think>`` that the generation
prompt does not contain (thinking on), the empty block counts as prompt, not as a target.

Finding those boundaries by rendering every prefix is quadratic in turns. Here the conversation is
rendered once; the template's layout (turn-start token, assistant header, generation prompt, the
header of an assistant turn without reasoning) is learned once per template and kwargs from three
tiny probe renders, and the assistant turns are found by one scan of the rendered text. When the
scan's structural checks fail (a template we cannot read that way, or a turn-start token inside a
message), the conversation falls back to the exact prefix renders, so the result is the same either
way (``exact_spans`` is also the tests' oracle). Tokens: one encode of the whole text with
character offsets; a token is trained iff it starts inside a trained span, and the ids are exactly
``apply_chat_template(..., tokenize=True)``'s.

Multi-turn with reasoning: templates such as Nemotron 3's drop earlier turns' reasoning from the
history, so one rendering cannot train every turn with its reasoning. ``multi_turn_reasoning=split``
(the reference recipe's way, default) makes one sample per user turn, each training the assistant
turns after that user turn; ``last`` keeps one sample training only the turns after the last user turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nemotron.data_prep.chat_template import ChatRenderer, TemplateRenderError
from nemotron.data_prep.tokenizer import Tokenizer

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "function_response": "tool",
}
ROLES = ("system", "user", "assistant", "tool", "developer")
PROBE = "\ue000"  # private-use characters: never produced by a template, survive trim/strip
USER_PROBE = "\ue001"


class BadConversation(ValueError):
    """The record is not a usable conversation; ``args[0]`` is the bad-row reason."""


@dataclass
class Conversation:
    """One input row, normalised to OpenAI messages, plus its tools and template kwargs."""

    messages: list[dict[str, Any]]
    tools: list[Any] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def _message(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadConversation("bad_message")
    if "role" not in raw and "from" in raw:  # ShareGPT
        role = SHAREGPT_ROLES.get(str(raw.get("from")).lower())
        if role is None:
            raise BadConversation("unknown_role")
        raw = {"role": role, "content": raw.get("value")}
    message = {k: v for k, v in raw.items() if v is not None}
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or role not in ROLES:
        raise BadConversation("unknown_role" if isinstance(role, str) else "bad_message")
    if content is not None and not isinstance(content, str | list):
        raise BadConversation("bad_message")
    if role == "assistant":
        if content is None and not message.get("tool_calls") and not message.get("reasoning_content"):
            raise BadConversation("bad_message")
        if message.get("tool_calls"):
            message["tool_calls"] = [_tool_call(c) for c in message["tool_calls"]]
    elif content is None:
        raise BadConversation("bad_message")
    return message


def _tool_call(call: Any) -> dict[str, Any]:
    """Arguments given as a JSON string become a dict (templates iterate ``arguments|items``), as the
    reference recipe does before rendering."""
    if not isinstance(call, dict):
        raise BadConversation("bad_tool_call")
    call = {k: v for k, v in call.items() if v is not None}
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadConversation("bad_tool_call")
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise BadConversation("bad_tool_arguments") from None
        fn = {**fn, "arguments": args}
        call = {**call, "function": fn} if "function" in call else fn
    return call


def parse_record(record: dict[str, Any], messages_field: str, tools_field: str, kwargs_field: str) -> Conversation:
    """OpenAI ``messages`` (tool_calls, tool role, reasoning_content) or ShareGPT ``conversations``
    (from/value) -> ``Conversation``; raises ``BadConversation``."""
    raw = record.get(messages_field)
    if raw is None and messages_field != "conversations":
        raw = record.get("conversations")
    if raw is None:
        raise BadConversation("missing_field")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise BadConversation("not_a_conversation") from None
    if not isinstance(raw, list) or not raw:
        raise BadConversation("not_a_conversation")
    messages = [_message(m) for m in raw]
    tools = record.get(tools_field)
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            raise BadConversation("bad_tools") from None
    if tools is not None and not isinstance(tools, list):
        raise BadConversation("bad_tools")
    kwargs = record.get(kwargs_field) or {}
    if not isinstance(kwargs, dict):
        raise BadConversation("bad_chat_template_kwargs")
    return Conversation(messages, tools or None, kwargs)


def has_reasoning(messages: list[dict[str, Any]]) -> bool:
    """Non-empty reasoning on any assistant turn (the template's own test: a string that trims to non-empty)."""
    return any(
        isinstance(m.get("reasoning_content"), str) and m["reasoning_content"].strip()
        for m in messages
        if m["role"] == "assistant"
    )


def training_samples(messages: list[dict[str, Any]], multi_turn_reasoning: str) -> list[tuple[list[dict], int]]:
    """``(messages, first trained message index)`` per sample; see the module docstring."""
    if not has_reasoning(messages):
        return [(messages, 0)]
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        return [(messages, 0)]
    if multi_turn_reasoning == "last":
        return [(messages, users[-1] + 1)]
    out = []
    for k, u in enumerate(users):
        end = users[k + 1] if k + 1 < len(users) else len(messages)
        if any(m["role"] == "assistant" for m in messages[u + 1 : end]):
            out.append((messages[:end], u + 1))
    return out


def _common_prefix(*texts: str) -> str:
    out = texts[0]
    for text in texts[1:]:
        n = 0
        for a, b in zip(out, text, strict=False):
            if a != b:
                break
            n += 1
        out = out[:n]
    return out


@dataclass(frozen=True)
class Layout:
    """What a template writes around an assistant turn, learned from probe renders."""

    turn_start: str  # the first token of the generation prompt, e.g. <|im_start|>
    assistant: str  # what every rendered assistant turn starts with
    gen_prompt: str  # the generation prompt, e.g. <|im_start|>assistant\n<think>\n
    empty_header: str  # the header of an assistant turn without reasoning, e.g. ...assistant\n<think></think>


def learn_layout(renderer: ChatRenderer, tok: Tokenizer, kwargs: dict[str, Any]) -> Layout | None:
    """Three probe renders; None when the template does not render a probe prefix-stably."""
    user = {"role": "user", "content": USER_PROBE}
    reply = {"role": "assistant", "content": PROBE}
    try:
        base = renderer.render([user], kwargs=kwargs)
        with_gen = renderer.render([user], add_generation_prompt=True, kwargs=kwargs)
        last = renderer.render([user, reply], kwargs=kwargs)
        history = renderer.render([user, reply, user], kwargs=kwargs)
    except TemplateRenderError:
        return None
    if not with_gen.startswith(base) or len(with_gen) == len(base) or PROBE not in last or PROBE not in history:
        return None
    gen = with_gen[len(base) :]
    ids, starts = tok.encode_with_offsets(gen)
    turn_start = gen[: starts[1]] if len(starts) > 1 else gen

    def header(text: str) -> str:  # the assistant turn's text before its content
        end = text.find(PROBE)
        begin = text.rfind(turn_start, 0, end)
        return text[begin:end] if begin >= 0 else ""

    empty, hist = header(last), header(history)
    assistant = _common_prefix(gen, empty, hist)
    if not turn_start or not empty.startswith(turn_start) or len(assistant) <= len(turn_start):
        return None
    return Layout(turn_start, assistant, gen, empty)


def _mentions(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(_mentions(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needle) for v in value)
    return False


def scan_spans(layout: Layout, text: str, messages: list[dict], train_from: int) -> list[tuple[int, int]] | None:
    """Trained character spans found by one scan of the rendered text; None when the checks fail
    (including any message text that contains the turn-start token, which would cut a turn short)."""
    if _mentions(messages, layout.turn_start):
        return None
    starts = []
    pos = text.find(layout.turn_start)
    while pos >= 0:
        starts.append(pos)
        pos = text.find(layout.turn_start, pos + len(layout.turn_start))
    ends = [*starts[1:], len(text)]
    turns = [(a, b) for a, b in zip(starts, ends, strict=True) if text.startswith(layout.assistant, a)]
    assistant_idx = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if len(turns) != len(assistant_idx):
        return None
    spans = []
    for (a, b), i in zip(turns, assistant_idx, strict=True):
        if i < train_from:
            continue
        if text.startswith(layout.gen_prompt, a):
            s = a + len(layout.gen_prompt)
        elif text.startswith(layout.empty_header, a):
            s = a + len(layout.empty_header)
        else:
            return None
        if s > b:
            return None
        spans.append((s, b))
    return spans


def exact_spans(
    renderer: ChatRenderer,
    text: str,
    messages: list[dict],
    train_from: int,
    tools: list | None,
    kwargs: dict[str, Any],
    layout: Layout | None,
) -> list[tuple[int, int]]:
    """The reference definition by prefix renders (quadratic): fallback and test oracle."""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i < train_from:
            continue
        if i == 0:
            raise BadConversation("assistant_first")
        prompt = renderer.render(messages[:i], tools=tools, add_generation_prompt=True, kwargs=kwargs)
        if not text.startswith(prompt) and layout is not None:
            prompt = renderer.render(messages[:i], tools=tools, kwargs=kwargs)
            prompt += layout.empty_header  # the reference recipe's empty-reasoning rule
        if not text.startswith(prompt):
            # e.g. reasoning in a turn rendered with enable_thinking=false: the turn does not continue
            # the generation prompt, so no target is well defined
            raise BadConversation("prompt_mismatch")
        done = renderer.render(messages[: i + 1], tools=tools, kwargs=kwargs)
        if not text.startswith(done):
            done = done.rstrip()
            if not text.startswith(done):
                raise BadConversation("template_not_incremental")
        spans.append((len(prompt), len(done)))
    return spans


def mask_from_spans(tok: Tokenizer, text: str, spans: list[tuple[int, int]]) -> tuple[Any, Any]:
    """(input_ids int32, token-aligned loss mask uint8): one encode; a token is trained iff it starts in a span."""
    import numpy as np

    ids, starts = tok.encode_with_offsets(text)
    ids_arr = np.asarray(ids, dtype=np.int32)
    starts_arr = np.asarray(starts, dtype=np.int64)
    mask = np.zeros(len(ids_arr), dtype=np.uint8)
    if spans:
        span_starts = np.array([s for s, _ in spans], dtype=np.int64)
        span_ends = np.array([e for _, e in spans], dtype=np.int64)
        which = np.searchsorted(span_starts, starts_arr, side="right") - 1
        inside = (which >= 0) & (starts_arr < span_ends[np.clip(which, 0, None)])
        mask = inside.astype(np.uint8)
    if not mask.any():
        raise BadConversation("no_trained_tokens")
    return ids_arr, mask


@dataclass
class TemplateEncoder:
    """Renders with the tokenizer's chat template; one instance per worker (layouts cached per kwargs)."""

    renderer: ChatRenderer
    tok: Tokenizer
    fallbacks: int = 0  # conversations that needed the exact prefix renders
    _layouts: dict[str, Layout | None] = field(default_factory=dict)

    def layout(self, kwargs: dict[str, Any]) -> Layout | None:
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in self._layouts:
            self._layouts[key] = learn_layout(self.renderer, self.tok, kwargs)
        return self._layouts[key]

    def encode(
        self, messages: list[dict], train_from: int, tools: list | None, kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        if not any(m["role"] == "assistant" for m in messages[train_from:]):
            raise BadConversation("no_trained_turn")
        try:
            text = self.renderer.render(messages, tools=tools, kwargs=kwargs)
            layout = self.layout(kwargs)
            spans = scan_spans(layout, text, messages, train_from) if layout is not None else None
            if spans is None:
                self.fallbacks += 1
                spans = exact_spans(self.renderer, text, messages, train_from, tools, kwargs, layout)
        except TemplateRenderError as err:
            raise BadConversation(f"template_error: {str(err)[:80]}") from None
        return mask_from_spans(self.tok, text, spans)


def render_per_turn(messages: list[dict], template: Any) -> tuple[str, list[tuple[int, int]]]:
    """The explicit fallback for tokenizers without a chat template: ``template.turn`` per message;
    trained spans are the ``{content}`` of ``train_roles`` turns plus ``end_of_turn``. Text content only."""
    before, after = template.turn.split("{content}", 1)
    eot = len(template.end_of_turn)
    roles = set(template.roles)
    train_roles = set(template.train_roles)
    parts = [template.bos]
    pos = len(template.bos)
    spans: list[tuple[int, int]] = []
    for message in messages:
        role, content = message["role"], message.get("content")
        if not isinstance(content, str) or message.get("tool_calls"):
            raise BadConversation("bad_message")
        if role not in roles:
            raise BadConversation("unknown_role")
        head = before.replace("{role}", role)
        parts.append(head)
        pos += len(head)
        if role in train_roles:
            spans.append((pos, pos + len(content) + eot))
        parts.append(content)
        parts.append(after)
        pos += len(content) + len(after)
    if not spans:
        raise BadConversation("no_trained_turn")
    return "".join(parts), spans


@dataclass
class PerTurnEncoder:
    """The per-turn fallback behind the same interface as ``TemplateEncoder`` (tools/kwargs unused)."""

    template: Any
    tok: Tokenizer
    fallbacks: int = 0

    def encode(
        self, messages: list[dict], train_from: int, tools: list | None, kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        if has_reasoning(messages):  # the per-turn format has no place for it: refuse, never drop it
            raise BadConversation("reasoning_needs_chat_template")
        text, spans = render_per_turn(messages, self.template)
        return mask_from_spans(self.tok, text, spans)


def tokenize_conversation(tok: Tokenizer, messages: Any, template: Any) -> tuple[Any, Any]:
    """(input_ids, token-aligned mask) of one conversation with the per-turn template (kept for callers
    of the old API); raises BadConversation."""
    if not isinstance(messages, list) or not messages:
        raise BadConversation("not_a_conversation")
    return PerTurnEncoder(template, tok).encode([_message(m) for m in messages], 0, None, {})
