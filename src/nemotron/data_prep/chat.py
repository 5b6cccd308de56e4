"""Render a conversation with a per-turn template and compute its loss mask in one pass.

The naive way to find which tokens belong to assistant turns renders the chat template once per
prefix (quadratic in turns). Here the conversation is rendered once while recording the character
span of every trained turn (its content plus the end-of-turn marker), tokenized once with character
offsets, and a token is trained iff it starts inside a trained span. The tokens are exactly those of
the fully rendered conversation, i.e. what the model sees at inference.
"""

from __future__ import annotations

from typing import Any

from nemotron.data_prep.tokenizer import Tokenizer


class BadConversation(ValueError):
    """The record is not a usable conversation; ``args[0]`` is the bad-row reason."""


def render(messages: Any, template: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the (start, end) character spans the loss is computed on."""
    if not isinstance(messages, list) or not messages:
        raise BadConversation("not_a_conversation")
    before, after = template.turn.split("{content}", 1)
    eot = len(template.end_of_turn)
    roles = set(template.roles)
    train_roles = set(template.train_roles)
    parts = [template.bos]
    pos = len(template.bos)
    spans: list[tuple[int, int]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadConversation("bad_message")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
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


def tokenize_conversation(tok: Tokenizer, messages: Any, template: Any) -> tuple[Any, Any]:
    """(input_ids int32, loss_mask uint8) for one conversation; raises BadConversation."""
    import numpy as np

    text, spans = render(messages, template)
    ids, starts = tok.encode_with_offsets(text)
    ids_arr = np.asarray(ids, dtype=np.int32)
    starts_arr = np.asarray(starts, dtype=np.int64)
    span_starts = np.array([s for s, _ in spans], dtype=np.int64)
    span_ends = np.array([e for _, e in spans], dtype=np.int64)
    which = np.searchsorted(span_starts, starts_arr, side="right") - 1
    inside = (which >= 0) & (starts_arr < span_ends[np.clip(which, 0, None)])
    mask = inside.astype(np.uint8)
    if not mask.any():
        raise BadConversation("no_trained_tokens")
    return ids_arr, mask
