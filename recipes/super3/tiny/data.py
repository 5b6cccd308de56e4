"""Data readers for the tiny backend: Megatron bin/idx blends (pretrain) and packed SFT Parquet.

Why here and not megatron-core: megatron-core is a dev-only dependency (tests use it as the
independent reader); the tiny backend must run from a plain `tiny` install, so the `.idx` header is
parsed with numpy (format in DESIGN.md) and token streams are memory-mapped.

Conventions:
- pretrain windows are ``seq_length + 1`` tokens (inputs + next-token labels), sampled
  deterministically from ``(seed, step)`` so a resumed run sees exactly the batches it would have.
- packed SFT rows are read with ``nemotron.data_prep.packed_format.sequences``, the one reader of the
  format, which applies Megatron-Bridge's slicing rule: per sequence ``[s, e)`` the labels are
  ``input_ids[s+1:e]`` and ``loss_mask[s:e-1]`` gates them (the mask is stored label-aligned), with the
  mask zeroed where the input token is EOS. Rows are split back into their sequences so no sequence
  ever attends across a boundary.
"""

from __future__ import annotations

import json
import pathlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nemotron.errors import UserError

IDX_MAGIC = b"MMIDIDX\x00\x00"
# Megatron's dtype codes in the .idx header.
DTYPES: dict[int, type] = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}
IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------------
# Megatron bin/idx


@dataclass
class IndexedTokens:
    """One Megatron ``prefix.bin``/``prefix.idx`` pair as a flat token stream (documents end in EOD)."""

    prefix: pathlib.Path
    tokens: np.ndarray  # 1-D (memmap when the sequences are stored back to back)
    lengths: np.ndarray  # per sequence
    doc_index: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def document(self, i: int) -> np.ndarray:
        """Tokens of sequence ``i`` (a document in data prep's output)."""
        start = int(self.lengths[:i].sum())
        return np.asarray(self.tokens[start : start + int(self.lengths[i])])


def read_indexed(prefix: str | pathlib.Path) -> IndexedTokens:
    """Parse ``prefix.idx`` and memory-map ``prefix.bin``."""
    prefix = pathlib.Path(prefix)
    idx, binf = prefix.with_name(prefix.name + ".idx"), prefix.with_name(prefix.name + ".bin")
    if not idx.exists() or not binf.exists():
        raise UserError(f"missing {idx.name} or {binf.name} in {prefix.parent}", hint="re-run data prep")
    with open(idx, "rb") as f:
        header = f.read(9 + 8 + 1 + 8 + 8)
    if len(header) < 34 or header[:9] != IDX_MAGIC:
        raise UserError(f"{idx} is not a Megatron index file (bad magic)")
    version, code, n_seq, n_doc = struct.unpack("<QBQQ", header[9:])
    if version != 1 or code not in DTYPES:
        raise UserError(f"{idx}: unsupported version {version} or dtype code {code}")
    dtype = np.dtype(DTYPES[code])
    offset = 34
    lengths = np.memmap(idx, dtype=np.int32, mode="r", offset=offset, shape=(n_seq,))
    offset += 4 * n_seq
    pointers = np.memmap(idx, dtype=np.int64, mode="r", offset=offset, shape=(n_seq,))
    offset += 8 * n_seq
    doc_index = np.memmap(idx, dtype=np.int64, mode="r", offset=offset, shape=(n_doc,))
    total = int(np.asarray(lengths, dtype=np.int64).sum())
    size = binf.stat().st_size
    if n_seq == 0 or total == 0:
        raise UserError(f"{prefix} holds no tokens", hint="check the data prep input")
    expected = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))[:-1]]) * dtype.itemsize
    start = int(pointers[0])
    if np.array_equal(np.asarray(pointers) - start, expected) and start + total * dtype.itemsize <= size:
        tokens = np.memmap(binf, dtype=dtype, mode="r", offset=start, shape=(total,))
    else:  # sequences not back to back: gather them (tiny data only)
        raw = np.memmap(binf, dtype=np.uint8, mode="r")
        parts = [
            np.frombuffer(raw[p : p + n * dtype.itemsize], dtype=dtype)
            for p, n in zip(pointers.tolist(), lengths.tolist(), strict=True)
        ]
        tokens = np.concatenate(parts)
    return IndexedTokens(prefix, tokens, np.asarray(lengths), np.asarray(doc_index))


def read_blend(data_dir: str | pathlib.Path) -> dict[str, list[tuple[float, pathlib.Path]]]:
    """``blend.json`` -> ``{split: [(weight, absolute prefix), ...]}`` with weights summing to 1."""
    data_dir = pathlib.Path(data_dir)
    path = data_dir / "blend.json"
    if not path.exists():
        raise UserError(f"no blend.json in {data_dir}", hint="pass a pretrain-data artifact from data prep")
    raw = json.loads(path.read_text())
    blend: dict[str, list[tuple[float, pathlib.Path]]] = {}
    for split, flat in raw.items():
        if not isinstance(flat, list) or len(flat) % 2:
            raise UserError(f"blend.json split {split!r} must be a flat [weight, prefix, ...] list")
        pairs = [(float(flat[i]), pathlib.Path(flat[i + 1])) for i in range(0, len(flat), 2)]
        pairs = [(w, p if p.is_absolute() else data_dir / p) for w, p in pairs if w > 0]
        total = sum(w for w, _ in pairs)
        blend[split] = [(w / total, p) for w, p in pairs] if total > 0 else []
    return blend


class WindowSampler:
    """Fixed-length training windows drawn from a weighted blend, reproducible from ``(seed, key)``.

    Each window picks a dataset by the blend weights, then a uniformly random start in that
    dataset's token stream; streams shorter than a window are tiled. A window is ``seq_length + 1``
    tokens: inputs are ``[:-1]`` and labels ``[1:]``.
    """

    def __init__(self, blend: Sequence[tuple[float, str | pathlib.Path]], seq_length: int, seed: int = 1234):
        if not blend:
            raise UserError("the data blend for this split is empty")
        self.weights = np.array([w for w, _ in blend], dtype=np.float64)
        self.weights /= self.weights.sum()
        self.datasets = [read_indexed(p) for _, p in blend]
        self.seq_length = seq_length
        self.seed = seed

    def _stream(self, i: int) -> np.ndarray:
        tokens = self.datasets[i].tokens
        need = self.seq_length + 1
        if len(tokens) < need:
            return np.resize(np.asarray(tokens), need)
        return tokens

    def windows(self, key: int, size: int, stream: int = 0):
        """A ``(size, seq_length + 1)`` int64 tensor; the same ``key`` always gives the same windows."""
        import torch

        rng = np.random.default_rng([self.seed, stream, key])
        which = rng.choice(len(self.datasets), size=size, p=self.weights)
        rows = []
        for d in which.tolist():
            tokens = self._stream(d)
            start = int(rng.integers(0, len(tokens) - self.seq_length))
            rows.append(np.asarray(tokens[start : start + self.seq_length + 1], dtype=np.int64))
        return torch.from_numpy(np.stack(rows))

    def batch(self, key: int, size: int, stream: int = 0) -> dict[str, Any]:
        """Training batch ``key``: ``input_ids`` = window[:-1], ``labels`` = window[1:]."""
        w = self.windows(key, size, stream)
        return {"input_ids": w[:, :-1].contiguous(), "labels": w[:, 1:].contiguous()}


# --------------------------------------------------------------------------------------------------
# packed SFT Parquet


@dataclass
class SftSequence:
    """One chat sequence recovered from a packed row."""

    input_ids: np.ndarray  # the whole sequence input_ids[s:e]
    label_mask: np.ndarray  # len - 1 entries: label_mask[j] == 1 trains token j+1 (predicted at position j)


def unpack_row(
    input_ids: Sequence[int], loss_mask: Sequence[int], seq_start_id: Sequence[int], eos_id: int | None = None
) -> list[SftSequence]:
    """Split one packed row into its sequences exactly as Megatron-Bridge does (``packed_format.sequences``)."""
    from nemotron.data_prep.packed_format import sequences

    try:
        parts = sequences(input_ids, loss_mask, seq_start_id, eos_id=eos_id)
    except ValueError as exc:
        raise UserError(f"bad packed SFT row: {exc}", hint="re-run data prep sft") from None
    return [SftSequence(p.input_ids, p.loss_mask.astype(np.int8)) for p in parts]


def sft_split_files(data_dir: str | pathlib.Path, split: str = "train") -> list[pathlib.Path]:
    """Parquet files of one split: from data prep's ``manifest.json`` (``splits.<split>.files``), or,
    without a manifest, every ``*.parquet`` under ``data_dir`` for ``train`` and none otherwise."""
    data_dir = pathlib.Path(data_dir)
    manifest = data_dir / "manifest.json"
    if manifest.exists():
        splits = json.loads(manifest.read_text()).get("splits") or {}
        if splits:
            return [data_dir / f for f in (splits.get(split) or {}).get("files", [])]
    return sorted(data_dir.rglob("*.parquet")) if split == "train" else []


def read_sft_packs(
    data_dir: str | pathlib.Path, max_length: int | None = None, split: str = "train", eos_id: int | None = None
) -> list[list[SftSequence]]:
    """One split's packed rows, each unpacked into its sequences (sequences without targets dropped,
    longer ones cut to ``max_length``); ``eos_id`` as Megatron-Bridge's tokenizer EOS."""
    from nemotron.data_prep.packed_format import read_rows

    data_dir = pathlib.Path(data_dir)
    files = sft_split_files(data_dir, split)
    if not files:
        if split != "train":
            return []
        raise UserError(f"no Parquet files in {data_dir}", hint="pass an sft-data artifact from data prep")
    packs: list[list[SftSequence]] = []
    for f in files:
        for ids, mask, starts in read_rows(f):
            pack = []
            for s in unpack_row(ids, mask, starts, eos_id):
                if max_length is not None and len(s.input_ids) > max_length:
                    s = SftSequence(s.input_ids[:max_length], s.label_mask[: max_length - 1])
                if s.label_mask.any():
                    pack.append(s)
            if pack:
                packs.append(pack)
    if not packs and split == "train":
        raise UserError(f"no sequence in {data_dir} has loss_mask tokens", hint="check the SFT data prep")
    return packs


def read_sft_sequences(
    data_dir: str | pathlib.Path, max_length: int | None = None, split: str = "train", eos_id: int | None = None
) -> list[SftSequence]:
    """All sequences of one split, unpacked, in file/row order."""
    return [s for pack in read_sft_packs(data_dir, max_length, split, eos_id) for s in pack]


def collate_sft(seqs: Sequence[SftSequence], pad_id: int) -> dict[str, Any]:
    """Right-pad sequences into one batch.

    Returns ``input_ids``, ``attention_mask`` (1 on real tokens) and ``labels`` shifted for
    next-token prediction: ``labels[t]`` is token ``t+1`` when ``label_mask[t]`` is 1, else -100 (also
    on padding and the last position) -- Megatron-Bridge's labels and loss mask, position for position. Right padding keeps real-token outputs exact: every layer is
    causal, so padding after a sequence cannot reach it.
    """
    import torch

    width = max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for r, s in enumerate(seqs):
        n = len(s.input_ids)
        t = torch.from_numpy(s.input_ids.astype(np.int64))
        ids[r, :n] = t
        attn[r, :n] = 1
        keep = torch.from_numpy(s.label_mask[: n - 1].astype(bool))
        labels[r, : n - 1] = torch.where(keep, t[1:], torch.full_like(t[1:], IGNORE_INDEX))
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


class SftBatches:
    """Shuffled epochs over packed rows, reproducible from ``(seed, key)``.

    A batch of ``size`` packs (Megatron's unit: global_batch_size counts packed rows) is unpacked
    into all its sequences, so a step sees the same tokens as the packed batch but no sequence
    attends to another. The sequences are sorted by length and right-padded in chunks of at most
    ``chunk_tokens`` padded tokens: padding everything to the longest chat tripled the work.
    """

    def __init__(self, packs: Sequence[Sequence[SftSequence]], pad_id: int, seed: int = 1234, chunk_tokens: int = 2048):
        self.packs = [list(p) for p in packs]
        self.pad_id = pad_id
        self.seed = seed
        self.chunk_tokens = chunk_tokens
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.packs))}
        return self._orders[epoch]

    def sequences(self, key: int, size: int) -> list[SftSequence]:
        """The sequences of batch ``key`` (``size`` packs; epochs reshuffle, no state to save on resume)."""
        n = len(self.packs)
        picks: list[SftSequence] = []
        for j in range(key * size, key * size + size):
            epoch, pos = divmod(j, n)
            picks += self.packs[int(self._order(epoch)[pos])]
        return picks

    def batch(self, key: int, size: int) -> list[dict[str, Any]]:
        """Batch ``key`` as length-sorted, right-padded chunks (together one optimizer micro-batch)."""
        return chunk_by_length(self.sequences(key, size), self.pad_id, self.chunk_tokens)


def chunk_by_length(seqs: Sequence[SftSequence], pad_id: int, chunk_tokens: int = 2048) -> list[dict[str, Any]]:
    """Sort by length and collate into chunks whose padded size stays within ``chunk_tokens``."""
    ordered = sorted(seqs, key=lambda s: len(s.input_ids))
    chunks: list[list[SftSequence]] = []
    for s in ordered:
        if chunks and (len(chunks[-1]) + 1) * len(s.input_ids) <= chunk_tokens:
            chunks[-1].append(s)
        else:
            chunks.append([s])
    return [collate_sft(c, pad_id) for c in chunks]
