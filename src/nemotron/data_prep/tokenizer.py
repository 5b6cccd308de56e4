"""Load any HF ``tokenizer.json`` or tiktoken rank file by path, with the facts data prep needs.

Both kinds expose the same small surface: ``encode_docs`` (many texts to token arrays, the pretrain
hot path), ``encode_with_offsets`` (one text with each token's start character, for SFT loss masks),
``token_id``, ``vocab_size``, ``eod_id`` and a content hash that keys the shard plan. Loading happens
once per worker process (``get_tokenizer`` caches).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import sha256_file
from nemotron.errors import UserError

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOD_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "<|im_end|>")
PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything that determines token ids; picklable so worker processes can load it themselves."""

    path: str
    kind: str  # hf | tiktoken (auto is resolved before this is built)
    sha256: str
    eod: str | None
    pattern: str | None
    special_tokens: tuple[str, ...]
    add_special_tokens: bool

    def describe(self) -> dict[str, Any]:
        return asdict(self) | {"special_tokens": list(self.special_tokens)}


def resolve_spec(section: Any) -> TokenizerSpec:
    """Build the spec from a validated ``tokenizer`` config section (path checks, kind detection, hash)."""
    from nemotron.data_prep.sources import resolve_user_path

    path = resolve_user_path(section.path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UserError(
            f"tokenizer file not found: {path}",
            hint="set tokenizer.path to an HF tokenizer.json (or its directory) or a tiktoken rank file",
        )
    kind = section.kind
    if kind == "auto":
        with open(path, "rb") as fh:
            head = fh.read(64).lstrip()
        kind = "hf" if head.startswith(b"{") else "tiktoken"
    return TokenizerSpec(
        path=str(path.resolve()),
        kind=kind,
        sha256=sha256_file(path),
        eod=section.eod,
        pattern=section.pattern if kind == "tiktoken" else None,
        special_tokens=tuple(section.special_tokens) if kind == "tiktoken" else (),
        add_special_tokens=bool(section.add_special_tokens) if kind == "hf" else False,
    )


class Tokenizer:
    """Common interface over tiktoken and HF ``tokenizers``."""

    spec: TokenizerSpec
    vocab_size: int
    eod_id: int

    def encode_docs(self, texts: list[str]) -> list[Any]:
        """Token ids per text (numpy uint32 arrays or lists), no EOD."""
        raise NotImplementedError

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids of ``text`` (special tokens in the text recognised) and each token's start char."""
        raise NotImplementedError

    def token_id(self, token: str) -> int | None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.spec.path,
            "kind": self.spec.kind,
            "sha256": self.spec.sha256,
            "vocab_size": self.vocab_size,
            "eod_id": self.eod_id,
            "pad_id": self.pad_id(),
        }

    def pad_id(self) -> int:
        for name in PAD_CANDIDATES:
            found = self.token_id(name)
            if found is not None:
                return found
        return self.eod_id

    def _resolve_eod(self, default_names: tuple[str, ...]) -> int:
        names = (self.spec.eod,) if self.spec.eod else default_names
        for name in names:
            found = self.token_id(name)
            if found is not None:
                return found
        raise UserError(
            f"tokenizer {self.spec.path} has no end-of-document token {' / '.join(names)}",
            hint="set tokenizer.eod to the tokenizer's EOS token",
        )


class TiktokenTokenizer(Tokenizer):
    def __init__(self, spec: TokenizerSpec) -> None:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        self.spec = spec
        try:
            ranks = load_tiktoken_bpe(spec.path, expected_hash=spec.sha256)
        except ValueError as exc:
            raise UserError(
                f"{spec.path} is not a tiktoken rank file ({exc})",
                hint="use tokenizer.kind=hf for a tokenizer.json",
            ) from None
        next_id = max(ranks.values()) + 1 if ranks else 0
        specials: dict[str, int] = {}
        for token in spec.special_tokens:
            specials[token] = next_id
            next_id += 1
        self._enc = tiktoken.Encoding(
            name=Path(spec.path).stem,
            pat_str=spec.pattern or GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )
        self._specials = specials
        self._ranks_by_bytes = ranks
        self.vocab_size = self._enc.n_vocab
        self.eod_id = self._resolve_eod(("<|endoftext|>",))
        core = self._enc._core_bpe
        # Rust straight into a buffer: no per-token Python ints (the pretrain hot path).
        self._to_buffer = getattr(core, "encode_to_tiktoken_buffer", None)

    def encode_docs(self, texts: list[str]) -> list[Any]:
        if self._to_buffer is None:
            return [self._enc.encode_ordinary(t) for t in texts]
        import numpy as np

        out = []
        none: set[str] = set()
        for text in texts:
            try:
                buf = self._to_buffer(text, none)
            except UnicodeEncodeError:  # lone surrogates: same fix-up as tiktoken's encode_ordinary
                text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                buf = self._to_buffer(text, none)
            out.append(np.frombuffer(buf, dtype=np.uint32))
        return out

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        ids = self._enc.encode(text, allowed_special="all")
        _, offsets = self._enc.decode_with_offsets(ids)
        return ids, offsets

    def token_id(self, token: str) -> int | None:
        if token in self._specials:
            return self._specials[token]
        return self._ranks_by_bytes.get(token.encode("utf-8"))


class HfTokenizer(Tokenizer):
    def __init__(self, spec: TokenizerSpec) -> None:
        from tokenizers import Tokenizer as _Tok

        self.spec = spec
        try:
            self._tok = _Tok.from_file(spec.path)
        except Exception as exc:  # tokenizers raises a bare Exception on parse errors
            raise UserError(
                f"{spec.path} is not a Hugging Face tokenizer.json ({str(exc).splitlines()[0][:120]})",
                hint="use tokenizer.kind=tiktoken for a tiktoken rank file",
            ) from None
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.eod_id = self._resolve_eod(self._eos_from_config() + EOD_CANDIDATES)

    def _eos_from_config(self) -> tuple[str, ...]:
        config = Path(self.spec.path).with_name("tokenizer_config.json")
        if not config.is_file():
            return ()
        try:
            eos = json.loads(config.read_text()).get("eos_token")
        except (OSError, ValueError):
            return ()
        if isinstance(eos, dict):
            eos = eos.get("content")
        return (eos,) if isinstance(eos, str) else ()

    def encode_docs(self, texts: list[str]) -> list[Any]:
        encodings = self._tok.encode_batch_fast(texts, add_special_tokens=self.spec.add_special_tokens)
        return [e.ids for e in encodings]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        enc = self._tok.encode(text, add_special_tokens=self.spec.add_special_tokens)
        return enc.ids, [start for start, _ in enc.offsets]

    def token_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)


_CACHE: dict[TokenizerSpec, Tokenizer] = {}


def get_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """The loaded tokenizer for ``spec``, once per process."""
    if spec not in _CACHE:
        _CACHE[spec] = TiktokenTokenizer(spec) if spec.kind == "tiktoken" else HfTokenizer(spec)
    return _CACHE[spec]


def limit_threads_in_worker() -> None:
    """Worker processes already use every core; keep HF's Rayon pool from oversubscribing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
