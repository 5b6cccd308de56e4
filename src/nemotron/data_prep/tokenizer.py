"""Load any HF ``tokenizer.json`` or tiktoken rank file by path, with the facts data prep needs.

Both kinds expose the same small surface: ``encode_docs`` (many texts to token arrays, the pretrain
hot path), ``encode_with_offsets`` (one text with each token's start character, for SFT loss masks),
``token_id``, ``vocab_size``, ``eod_id`` and a content hash that keys the shard plan. Loading happens
once per worker process (``get_tokenizer`` caches).

An HF byte-level BPE file is encoded through a tiktoken rank table built from it (~8x faster than
HF ``tokenizers``) when ``rank_table`` shows the two are the same algorithm and both give the same
ids on a probe corpus; otherwise through HF ``tokenizers``. ``resolve_spec`` decides once (in the
stage's main process) and records the choice in ``TokenizerSpec.encoder``, so workers only build
the chosen encoder; the choice is logged and written to every receipt and the manifest. It is not
part of the shard keys: both encoders give the same ids.
"""

from __future__ import annotations

import contextlib
import json
import logging
import marshal
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import sha256_file
from nemotron.errors import UserError

log = logging.getLogger(__name__)

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
    # Which encoder gives the ids: "tiktoken" (rank file), "rank-table" (HF file, proven equivalent),
    # "hf" (HF tokenizers), "" (not decided yet: get_tokenizer decides). Not in equality or describe():
    # both HF encoders give the same ids, so the choice must not change shard keys.
    encoder: str = field(default="", compare=False)
    encoder_note: str = field(default="", compare=False)  # why HF tokenizers was used, when it was

    def describe(self) -> dict[str, Any]:
        out = asdict(self) | {"special_tokens": list(self.special_tokens)}
        del out["encoder"], out["encoder_note"]
        return out


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
    spec = TokenizerSpec(
        path=str(path.resolve()),
        kind=kind,
        sha256=sha256_file(path),
        eod=section.eod,
        pattern=section.pattern if kind == "tiktoken" else None,
        special_tokens=tuple(section.special_tokens) if kind == "tiktoken" else (),
        add_special_tokens=bool(section.add_special_tokens) if kind == "hf" else False,
        encoder="tiktoken" if kind == "tiktoken" else "",
    )
    if kind == "hf":  # decide the encoder here, once, so every worker of the run uses the same one
        spec = get_tokenizer(spec).spec
    return spec


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
            "encoder": self.spec.encoder,
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


def _encode_to_arrays(to_buffer: Any, texts: list[str], allowed: Any) -> list[Any]:
    """tiktoken straight into uint32 buffers: no per-token Python ints (the pretrain hot path).

    ``allowed(text)`` is the set of special tokens to recognise in ``text``.
    """
    import numpy as np

    out = []
    for text in texts:
        specials = allowed(text)
        try:
            buf = to_buffer(text, specials)
        except UnicodeEncodeError:  # lone surrogates: same fix-up as tiktoken's encode_ordinary
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            buf = to_buffer(text, specials)
        out.append(np.frombuffer(buf, dtype=np.uint32))
    return out


_NO_SPECIALS: frozenset[str] = frozenset()


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
        self._to_buffer = getattr(self._enc._core_bpe, "encode_to_tiktoken_buffer", None)

    def encode_docs(self, texts: list[str]) -> list[Any]:
        if self._to_buffer is None:
            return [self._enc.encode_ordinary(t) for t in texts]
        return _encode_to_arrays(self._to_buffer, texts, lambda _: _NO_SPECIALS)

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        ids = self._enc.encode(text, allowed_special="all")
        _, offsets = self._enc.decode_with_offsets(ids)
        return ids, offsets

    def token_id(self, token: str) -> int | None:
        if token in self._specials:
            return self._specials[token]
        return self._ranks_by_bytes.get(token.encode("utf-8"))


class RankTableEncoder:
    """tiktoken over a rank table derived from an HF file: HF's ids, HF's added-token matching,
    HF's post-processor prefix/suffix and HF's token start offsets (see ``rank_table``)."""

    def __init__(self, table: Any, name: str) -> None:
        import numpy as np
        import tiktoken

        self._enc = tiktoken.Encoding(
            name=name, pat_str=table.pattern, mergeable_ranks=table.ranks, special_tokens=table.specials
        )
        self._core = self._enc._core_bpe
        self._all_specials = frozenset(table.specials)
        # Asking tiktoken to look for added tokens costs ~25% on Tekken even when there are none, so
        # look in Python first: at each occurrence of an added token's first character, compare the
        # substrings of every added-token length with the set (cheap when the added tokens start
        # with few distinct characters, Tekken: "<" and "["; otherwise always let tiktoken look).
        starts = {token[0] for token in table.specials}
        self._starts = tuple(starts) if len(starts) <= 8 else None
        self._lengths = sorted({len(token) for token in table.specials})
        self.prefix, self.suffix = list(table.prefix), list(table.suffix)
        self._prefix = np.asarray(table.prefix, dtype=np.uint32)
        self._suffix = np.asarray(table.suffix, dtype=np.uint32)

    def _allowed(self, text: str) -> frozenset[str]:
        """The added tokens tiktoken must recognise in ``text``: all of them if one occurs, else none."""
        if self._starts is None:
            return self._all_specials
        specials, lengths = self._all_specials, self._lengths
        for first in self._starts:
            pos = text.find(first)
            while pos >= 0:
                for n in lengths:
                    if text[pos : pos + n] in specials:
                        return specials
                pos = text.find(first, pos + 1)
        return _NO_SPECIALS

    def encode_docs(self, texts: list[str], add_special_tokens: bool) -> list[Any]:
        arrays = _encode_to_arrays(self._core.encode_to_tiktoken_buffer, texts, self._allowed)
        if add_special_tokens and (self.prefix or self.suffix):
            import numpy as np

            arrays = [np.concatenate((self._prefix, a, self._suffix)) for a in arrays]
        return arrays

    def encode_with_offsets(self, text: str, add_special_tokens: bool) -> tuple[list[int], list[int]]:
        try:
            ids = self._core.encode(text, set(self._allowed(text)))
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            ids = self._core.encode(text, set(self._allowed(text)))
        # tiktoken's offsets are the index of the character holding each token's first byte: HF's
        # start offsets for byte-level tokens (a token inside a multi-byte character starts there).
        _, starts = self._enc.decode_with_offsets(ids)
        if add_special_tokens and (self.prefix or self.suffix):
            ids = self.prefix + ids + self.suffix
            starts = [0] * len(self.prefix) + starts + [0] * len(self.suffix)
        return ids, starts


class HfTokenizer(Tokenizer):
    """An HF ``tokenizer.json``, encoded through a ``RankTableEncoder`` when it is proven equivalent."""

    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        self._tok: Any = None
        self._fast: RankTableEncoder | None = None
        note = spec.encoder_note
        cached = _cached_verdict(spec) if spec.encoder == "" else None  # "" proven, else why refused
        want_fast = spec.encoder == "rank-table" or (spec.encoder == "" and cached in (None, ""))
        saved = _load_table(spec) if spec.encoder == "rank-table" or cached == "" else None
        if saved is not None:  # a main process proved and saved this table: no JSON parse, no checks
            table, self._vocab = saved
            self._added = dict(table.specials)
            self._fast = RankTableEncoder(table, Path(spec.path).parent.name or "hf")
        else:
            doc = self._read_json()
            self._added = {t["content"]: int(t["id"]) for t in doc.get("added_tokens") or []}
            vocab = (doc.get("model") or {}).get("vocab")
            self._vocab = vocab if isinstance(vocab, dict) else {}
            if want_fast:
                note = self._try_rank_table(doc, verify=spec.encoder == "" and cached is None)
            elif cached is not None:
                note = cached
            del doc
        if self._fast is None:
            self._load_hf()
            self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        else:
            self.vocab_size = len(self._vocab.keys() | self._added.keys())  # HF's get_vocab_size(True)
        if spec.encoder == "":
            self.spec = replace(spec, encoder="rank-table" if self._fast else "hf", encoder_note=note)
            if self._fast:
                log.info("tokenizer %s: fast path (tiktoken rank table, equivalent to HF tokenizers)", spec.path)
            else:
                log.warning("tokenizer %s: HF tokenizers (fast path refused: %s)", spec.path, note)
        self.eod_id = self._resolve_eod(self._eos_from_config() + EOD_CANDIDATES)

    def _read_json(self) -> dict[str, Any]:
        try:
            with open(self.spec.path, "rb") as fh:
                doc = json.load(fh)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            return doc
        except ValueError as exc:
            raise UserError(
                f"{self.spec.path} is not a Hugging Face tokenizer.json ({str(exc).splitlines()[0][:120]})",
                hint="use tokenizer.kind=tiktoken for a tiktoken rank file",
            ) from None

    def _load_hf(self) -> None:
        from tokenizers import Tokenizer as _Tok

        try:
            self._tok = _Tok.from_file(self.spec.path)
        except Exception as exc:  # tokenizers raises a bare Exception on parse errors
            raise UserError(
                f"{self.spec.path} is not a Hugging Face tokenizer.json ({str(exc).splitlines()[0][:120]})",
                hint="use tokenizer.kind=tiktoken for a tiktoken rank file",
            ) from None

    def _try_rank_table(self, doc: dict[str, Any], verify: bool) -> str:
        """Build the fast encoder; with ``verify``, also prove it against HF. Returns why not, or "".

        The verdict and the table are cached per (file sha256, library versions, checks version):
        the merge-table checks and the HF probe take seconds for a 131k vocabulary and give the same
        answer every run, and reading the saved table spares each worker parsing the JSON.
        """
        from nemotron.data_prep.rank_table import NotEquivalent, build_rank_table

        try:
            table = build_rank_table(doc, check_merges=verify)
            fast = RankTableEncoder(table, Path(self.spec.path).parent.name or "hf")
            if verify:
                self._load_hf()
                if table.needs_self_check:
                    self._check_tokens_encode_to_themselves()
                self._check_probe(fast)
        except NotEquivalent as exc:
            if verify:
                _store_verdict(self.spec, str(exc))
            return str(exc)
        if verify:
            _store_verdict(self.spec, "")
        _store_table(self.spec, table, self._vocab)
        self._fast = fast
        return ""

    def _check_tokens_encode_to_themselves(self) -> None:
        """Without ignore_merges HF runs merges even on a piece that is a token; tiktoken returns it whole."""
        from nemotron.data_prep.rank_table import NotEquivalent

        model = self._tok.model
        for token, token_id in self._vocab.items():
            if token in self._added:
                continue
            got = [t.id for t in model.tokenize(token)]
            if got != [token_id]:
                raise NotEquivalent(f"HF's BPE splits vocabulary token {token!r} into {got}")

    def _check_probe(self, fast: RankTableEncoder) -> None:
        from nemotron.data_prep.rank_table import NotEquivalent
        from nemotron.data_prep.tokenizer_probe import probe_texts

        texts = probe_texts(list(self._added))
        add = self.spec.add_special_tokens
        reference = self._tok.encode_batch(texts, add_special_tokens=add)
        for i, (ours, ref) in enumerate(zip(fast.encode_docs(texts, add), reference, strict=True)):
            if ours.tolist() != ref.ids:
                raise NotEquivalent(f"probe text {i}: ids differ from HF tokenizers")
            if i % 4 == 0:
                ids, starts = fast.encode_with_offsets(texts[i], add)
                if ids != ref.ids or starts != [a for a, _ in ref.offsets]:
                    raise NotEquivalent(f"probe text {i}: token offsets differ from HF tokenizers")

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
        if self._fast is not None:
            return self._fast.encode_docs(texts, self.spec.add_special_tokens)
        encodings = self._tok.encode_batch_fast(texts, add_special_tokens=self.spec.add_special_tokens)
        return [e.ids for e in encodings]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        if self._fast is not None:
            return self._fast.encode_with_offsets(text, self.spec.add_special_tokens)
        enc = self._tok.encode(text, add_special_tokens=self.spec.add_special_tokens)
        return enc.ids, [start for start, _ in enc.offsets]

    def token_id(self, token: str) -> int | None:
        if self._tok is not None:
            return self._tok.token_to_id(token)
        found = self._added.get(token)
        return found if found is not None else self._vocab.get(token)


def _verdict_key(spec: TokenizerSpec) -> dict[str, Any]:
    from importlib.metadata import version

    from nemotron.data_prep.rank_table import CHECKS_VERSION

    return {
        "sha256": spec.sha256,
        "add_special_tokens": spec.add_special_tokens,
        "checks": CHECKS_VERSION,
        "tiktoken": version("tiktoken"),
        "tokenizers": version("tokenizers"),
    }


def _verdict_path(spec: TokenizerSpec) -> Path:
    from nemotron.data_prep.atomic import sha256_json

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nemotron" / "tokenizer-checks"
    return root / f"{sha256_json(_verdict_key(spec))[:32]}.json"


def _cached_verdict(spec: TokenizerSpec) -> str | None:
    """ "" (fast path proven), a refusal reason, or None (not checked with these versions yet)."""
    try:
        entry = json.loads(_verdict_path(spec).read_text())
    except (OSError, ValueError):
        return None
    if entry.get("key") != _verdict_key(spec) or not isinstance(entry.get("refused"), str):
        return None
    return entry["refused"]


def _store_verdict(spec: TokenizerSpec, refused: str) -> None:
    from nemotron.data_prep.atomic import write_json_atomic

    with contextlib.suppress(OSError):  # a read-only home only costs the checks next time
        path = _verdict_path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"key": _verdict_key(spec), "refused": refused})


def _load_table(spec: TokenizerSpec) -> tuple[Any, dict[str, int]] | None:
    """(RankTable, vocabulary) saved by a process that built it from this exact file, or None.

    ``marshal``: loads a 131k-entry table in tens of milliseconds (the JSON takes ~1 s) and, unlike
    pickle, cannot run code from the file.
    """
    from nemotron.data_prep.rank_table import RankTable

    try:
        data = marshal.loads(_verdict_path(spec).with_suffix(".table").read_bytes())
        if not isinstance(data, dict) or data.get("key") != _verdict_key(spec):
            return None
        table = RankTable(
            data["pattern"], data["ranks"], data["specials"], tuple(data["prefix"]), tuple(data["suffix"]), False
        )
        return table, data["vocab"]
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None


def _store_table(spec: TokenizerSpec, table: Any, vocab: dict[str, int]) -> None:
    from nemotron.data_prep.atomic import write_bytes_atomic

    body = {
        "key": _verdict_key(spec),
        "pattern": table.pattern,
        "ranks": table.ranks,
        "specials": table.specials,
        "prefix": list(table.prefix),
        "suffix": list(table.suffix),
        "vocab": vocab,
    }
    with contextlib.suppress(OSError, ValueError):
        path = _verdict_path(spec).with_suffix(".table")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, marshal.dumps(body))


_CACHE: dict[TokenizerSpec, Tokenizer] = {}


def get_tokenizer(spec: TokenizerSpec) -> Tokenizer:
    """The loaded tokenizer for ``spec``, once per process.

    For an HF file whose encoder is not decided yet (``spec.encoder == ""``) this decides it; the
    returned tokenizer's ``spec`` then names the encoder (``resolve_spec`` returns that spec).
    """
    if spec not in _CACHE:
        _CACHE[spec] = TiktokenTokenizer(spec) if spec.kind == "tiktoken" else HfTokenizer(spec)
    return _CACHE[spec]


def limit_threads_in_worker() -> None:
    """Worker processes already use every core; keep HF's Rayon pool from oversubscribing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
