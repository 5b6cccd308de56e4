"""A rank-table (tiktoken) encoder built from an HF byte-level BPE ``tokenizer.json``, only when equivalent.

HF ``tokenizers`` runs a byte-level BPE at ~0.3M tokens/s per core; tiktoken runs the same kind of
BPE at ~2-3M. The two algorithms agree exactly when the file has this shape (each condition is
checked here; the first one that fails is the reason the fast path is refused):

- no normalizer, so the text that is split is the input text;
- the pre-tokenizer is a regex split (``Split`` with ``Isolated`` behaviour, or GPT-2's built-in
  ``ByteLevel(use_regex=true)``) followed by the byte-to-unicode ``ByteLevel`` mapping without a
  prefix space: exactly tiktoken's "split with a regex, encode each piece's UTF-8 bytes";
- a plain BPE model (no dropout, no subword prefix/suffix, no byte fallback) whose vocabulary is
  byte-level strings; tiktoken's ranks are its ids, so merge priority must follow id order: the
  token each merge makes has an id no smaller than any earlier merge's;
- the merges are exactly "every split of a vocabulary token into two vocabulary tokens": tiktoken
  merges any adjacent pair whose concatenation is a token, HF only listed pairs, so every token
  needs a merge and every such split must be listed (what ``transformers``' tiktoken converter
  writes, and true of GPT-2's and Tekken's files);
- ``ignore_merges`` (a pre-token that is itself a token is emitted whole) is tiktoken's behaviour;
  without it the caller must check that every token BPE-encodes to itself (``needs_self_check``);
- added tokens are matched in the text as HF does it (leftmost, longest): no ``lstrip``/``rstrip``/
  ``single_word`` options, and none is a prefix of another (so leftmost-first equals leftmost-longest);
- the post-processor adds only fixed special tokens (``TemplateProcessing``) or nothing
  (``ByteLevel`` without offset trimming), so ``add_special_tokens`` is a fixed prefix/suffix.

These are necessary conditions for tiktoken's algorithm to be HF's, checked from the file. What
they leave open (the two regex engines' Unicode tables; the order in which HF and tiktoken break a
tie between two different splits of one token) is checked by encoding a probe corpus with both
libraries before the fast path is used (``tokenizer.py``) and by the equivalence tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Bump when a check changes: cached verdicts (tokenizer.py) are keyed by it.
CHECKS_VERSION = 1

# HF's ByteLevel pre-tokenizer regex (tokenizers/src/pre_tokenizers/byte_level.rs, GPT-2's).
BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class NotEquivalent(Exception):
    """The file is not a shape tiktoken reproduces exactly; the message says which check failed."""


@dataclass(frozen=True)
class RankTable:
    """What a tiktoken ``Encoding`` needs, plus the post-processor's fixed ids."""

    pattern: str
    ranks: dict[bytes, int]  # mergeable token bytes -> id (the id doubles as merge priority)
    specials: dict[str, int]  # added tokens, recognised in the text like HF does
    prefix: tuple[int, ...]  # ids the post-processor puts before a sequence (add_special_tokens)
    suffix: tuple[int, ...]
    needs_self_check: bool  # ignore_merges is off: every token must BPE-encode to itself (caller checks)


def unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable stand-in character of each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    byte_values = list(printable)
    for b in range(256):
        if b not in printable:
            byte_values.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(byte_values, chars, strict=True)}


def build_rank_table(doc: dict[str, Any], check_merges: bool = True) -> RankTable:
    """Check ``doc`` (a parsed tokenizer.json) and derive the rank table; raises NotEquivalent.

    ``check_merges=False`` skips the merge-table checks (a second or two for a 131k vocabulary) in
    worker processes of a run whose main process already made them on the same file (same sha256).
    """
    _check_normalizer(doc.get("normalizer"))
    pattern = _pattern(doc.get("pre_tokenizer"))
    model = doc.get("model") or {}
    _check_model(model)
    specials = _specials(doc.get("added_tokens") or [])
    ranks = _ranks(model, specials)
    if check_merges:
        _check_merges(model, specials)
    prefix, suffix = _post_processor(doc.get("post_processor"), specials)
    return RankTable(pattern, ranks, specials, prefix, suffix, needs_self_check=not model.get("ignore_merges", False))


def _check_normalizer(normalizer: Any) -> None:
    if normalizer is None:
        return
    if normalizer.get("type") == "Sequence" and not normalizer.get("normalizers"):
        return
    raise NotEquivalent(f"normalizer {normalizer.get('type')} changes the text before splitting")


def _pattern(pre: Any) -> str:
    """The split regex of a [regex split, ByteLevel] pre-tokenizer."""
    if not pre:
        raise NotEquivalent("no pre-tokenizer (not byte-level BPE)")
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if steps and steps[-1].get("type") == "ByteLevel":
        last = steps[-1]
        if last.get("add_prefix_space"):
            raise NotEquivalent("ByteLevel add_prefix_space=true (tiktoken adds no space)")
        if len(steps) == 1:
            if not last.get("use_regex", True):
                raise NotEquivalent("ByteLevel without a split regex")
            return BYTE_LEVEL_PATTERN
        if len(steps) == 2 and not last.get("use_regex", True):
            split = steps[0]
            regex = (split.get("pattern") or {}).get("Regex")
            if split.get("type") != "Split" or regex is None:
                raise NotEquivalent(f"pre-tokenizer step {split.get('type')} is not a regex Split")
            if split.get("behavior") != "Isolated" or split.get("invert"):
                raise NotEquivalent(f"Split behavior {split.get('behavior')}/invert is not tiktoken's split")
            return regex
    names = [s.get("type") for s in steps]
    raise NotEquivalent(f"pre-tokenizer {names} is not [regex Split, ByteLevel]")


def _check_model(model: dict[str, Any]) -> None:
    if model.get("type") != "BPE":
        raise NotEquivalent(f"model {model.get('type')} is not BPE")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise NotEquivalent(f"BPE {key}={model[key]!r}")
    if model.get("byte_fallback"):
        raise NotEquivalent("BPE byte_fallback=true (not byte-level)")


def _specials(added: list[dict[str, Any]]) -> dict[str, int]:
    specials: dict[str, int] = {}
    for token in added:
        content = token["content"]
        for flag in ("lstrip", "rstrip", "single_word"):
            if token.get(flag):
                raise NotEquivalent(f"added token {content!r} has {flag}=true")
        if not content:
            raise NotEquivalent("an added token is empty")
        specials[content] = int(token["id"])
    ordered = sorted(specials)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.startswith(a):  # a prefix sorts right before its extensions
            raise NotEquivalent(f"added token {a!r} is a prefix of {b!r} (HF matches the longest)")
    return specials


def _ranks(model: dict[str, Any], specials: dict[str, int]) -> dict[bytes, int]:
    """Vocabulary bytes -> id, without added tokens (HF cuts those out of the text before BPE)."""
    table = unicode_to_byte()
    ranks: dict[bytes, int] = {}
    for token, token_id in model.get("vocab", {}).items():
        if token in specials:
            continue
        try:
            key = bytes([table[c] for c in token])
        except KeyError:
            raise NotEquivalent(f"vocabulary token {token!r} is not byte-level") from None
        if key in ranks:
            raise NotEquivalent(f"two vocabulary tokens decode to the bytes {key!r}")
        ranks[key] = int(token_id)
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise NotEquivalent(f"{len(missing)} single bytes (e.g. {missing[0]:#04x}) are not tokens")
    return ranks


def _merge_pairs(merges: list[Any]) -> list[tuple[str, str]]:
    """Both serialisations: ``["a", "b"]`` (tokenizers >= 0.20) and ``"a b"`` (older files)."""
    out = []
    for merge in merges:
        if isinstance(merge, str):
            left, _, right = merge.partition(" ")
            out.append((left, right))
        else:
            out.append((merge[0], merge[1]))
    return out


def _check_merges(model: dict[str, Any], specials: dict[str, int]) -> None:
    """Merge priority is id order, every token has a merge, and every two-token split is a merge."""
    vocab: dict[str, int] = {t: i for t, i in model.get("vocab", {}).items() if t not in specials}
    merges = _merge_pairs(model.get("merges", []))
    highest = -1
    merges_per_token: dict[str, int] = {}
    for index, (left, right) in enumerate(merges):
        if left not in vocab or right not in vocab:
            continue  # a merge with an added token never applies: added tokens are cut out first
        merged = left + right
        token_id = vocab.get(merged)
        if token_id is None:
            raise NotEquivalent(f"merge {index} ({left!r}, {right!r}) makes no vocabulary token")
        if token_id < highest:
            raise NotEquivalent(f"merge {index} makes id {token_id} after a merge made id {highest} (priority != id)")
        highest = token_id
        merges_per_token[merged] = merges_per_token.get(merged, 0) + 1
    for token in vocab:
        n = len(token)
        if n < 2:
            continue
        splits = 0
        for cut in range(1, n):
            if token[:cut] in vocab and token[cut:] in vocab:
                splits += 1
        listed = merges_per_token.get(token, 0)
        if listed == 0:
            raise NotEquivalent(f"vocabulary token {token!r} is made by no merge")
        if splits != listed:
            raise NotEquivalent(f"token {token!r} has {splits} two-token splits but {listed} merges")


def _post_processor(post: Any, specials: dict[str, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fixed ids a post-processor adds around a single sequence."""
    if post is None:
        return (), ()
    kind = post.get("type")
    if kind == "Sequence":
        prefix: tuple[int, ...] = ()
        suffix: tuple[int, ...] = ()
        for step in post.get("processors", []):
            p, s = _post_processor(step, specials)
            prefix, suffix = prefix + p, s + suffix
        return prefix, suffix
    if kind == "ByteLevel":
        if post.get("trim_offsets"):
            raise NotEquivalent("ByteLevel post-processor trims offsets")
        return (), ()
    if kind == "TemplateProcessing":
        tokens = post.get("special_tokens", {})
        prefix_ids: list[int] = []
        suffix_ids: list[int] = []
        seen_sequence = False
        for piece in post.get("single", []):
            if "Sequence" in piece:
                if piece["Sequence"].get("id") != "A" or seen_sequence:
                    raise NotEquivalent("TemplateProcessing single template is not one sequence A")
                seen_sequence = True
                continue
            name = piece.get("SpecialToken", {}).get("id")
            ids = tokens.get(name, {}).get("ids")
            if not ids:
                raise NotEquivalent(f"TemplateProcessing token {name!r} has no ids")
            (suffix_ids if seen_sequence else prefix_ids).extend(int(i) for i in ids)
        if not seen_sequence:
            raise NotEquivalent("TemplateProcessing single template has no sequence")
        return tuple(prefix_ids), tuple(suffix_ids)
    raise NotEquivalent(f"post-processor {kind} is not TemplateProcessing/ByteLevel")
