"""The packed SFT Parquet format: one definition, written by data prep, read by every backend and test.

One row per pack, three columns (the names and types Megatron-Bridge's packed-Parquet reader requires,
``REQUIRED_COLUMNS`` in NVIDIA-NeMo/Megatron-Bridge v0.4.0 ``src/megatron/bridge/data/datasets/packed_parquet.py``):
``input_ids`` list<int32> (the sequences back to back, no padding), ``loss_mask`` list<int8> (same
length) and ``seq_start_id`` list<int32> (start offset of each sequence, first 0, strictly increasing).

The loss mask is stored in **label alignment**: ``loss_mask[j]`` gates the label at position ``j``,
which is token ``j+1``. That is what Megatron-Bridge reads: ``GPTSFTPackedDataset.collate_fn`` /
``_build_loss_mask`` (v0.4.0 and v0.5.0 ``src/megatron/bridge/data/datasets/sft.py``, commit
0fbfe7d at v0.4.0) take, per sequence ``[s, e)``, tokens ``input_ids[s:e-1]``, labels
``input_ids[s+1:e]`` and mask ``loss_mask[s:e-1]``, and then zero the mask wherever the *input* token
is the tokenizer's EOS. Megatron-Bridge's own packer stores ``x[1:] + [False]``
(v0.4.0 ``data/datasets/packing_utils.py``). So a token-aligned mask (1 on each trained token) is
stored shifted left by one within its sequence, with 0 on the sequence's last position.

``sequences`` applies exactly that slicing rule; the tiny trainer and the tests read packs through it.
(Checked once by running Megatron-Bridge's own ``GPTSFTPackedParquetDataset`` + ``collate_fn`` from the
v0.4.0 and v0.4.2 (commit c810129) sources on CPU over data prep output: identical tokens, labels and
loss mask on every pack.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("input_ids", "loss_mask", "seq_start_id")
ALIGNMENT = "label"  # manifest.json "loss_mask_alignment"


def require_label_alignment(metadata: dict[str, Any] | None) -> None:
    """Refuse an sft-data artifact from before the label-aligned mask (data prep format 1): read with
    Megatron-Bridge's rule it would never train a turn's first token and train the token after it."""
    from nemotron.errors import UserError

    meta = metadata or {}
    if meta.get("kind") == "sft-data" and meta.get("loss_mask_alignment") != ALIGNMENT:
        raise UserError(
            "the sft-data artifact stores its loss mask token-aligned; Megatron-Bridge reads it label-aligned",
            hint="re-run `nemotron super3 data prep sft` to rebuild it",
        )


def label_aligned(token_mask: Any) -> np.ndarray:
    """Token-aligned mask (1 = this token is a target) -> stored mask (1 = the *next* token is a target)."""
    import numpy as np

    mask = np.asarray(token_mask, dtype=np.int8)
    out = np.zeros_like(mask)
    out[:-1] = mask[1:]
    return out


def write_packs(items: Sequence[tuple[Any, Any]], packs: Sequence[Sequence[int]]) -> Any:
    """A pyarrow table, one row per pack, from ``(ids, token-aligned mask)`` items (masks stored label-aligned)."""
    import numpy as np
    import pyarrow as pa

    ids_parts, mask_parts, starts_parts = [], [], []
    tok_offsets = [0]
    start_offsets = [0]
    for pack in packs:
        pos = 0
        starts = []
        for i in pack:
            ids, mask = items[i]
            ids_parts.append(np.asarray(ids))
            mask_parts.append(label_aligned(mask))
            starts.append(pos)
            pos += len(ids)
        starts_parts.append(np.asarray(starts, dtype=np.int32))
        tok_offsets.append(tok_offsets[-1] + pos)
        start_offsets.append(start_offsets[-1] + len(starts))

    def flat(parts: list[Any], dtype: Any) -> Any:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    offsets = pa.array(np.asarray(tok_offsets, dtype=np.int32))
    return pa.table(
        {
            "input_ids": pa.ListArray.from_arrays(offsets, pa.array(flat(ids_parts, np.int32))),
            "loss_mask": pa.ListArray.from_arrays(offsets, pa.array(flat(mask_parts, np.int8))),
            "seq_start_id": pa.ListArray.from_arrays(
                pa.array(np.asarray(start_offsets, dtype=np.int32)), pa.array(flat(starts_parts, np.int32))
            ),
        }
    )


@dataclass
class PackedSequence:
    """One sequence of a pack as Megatron-Bridge trains it."""

    tokens: np.ndarray  # input_ids[s:e-1]
    labels: np.ndarray  # input_ids[s+1:e]
    loss_mask: np.ndarray  # loss_mask[s:e-1], zeroed where tokens == eos_id

    @property
    def input_ids(self) -> np.ndarray:
        """The whole sequence ``input_ids[s:e]``."""
        import numpy as np

        return np.concatenate([self.tokens, self.labels[-1:]]) if len(self.labels) else self.tokens

    def trained_labels(self) -> np.ndarray:
        return self.labels[self.loss_mask.astype(bool)]


def check_row(input_ids: Sequence[int], loss_mask: Sequence[int], seq_start_id: Sequence[int]) -> str | None:
    """Megatron-Bridge's row validation (v0.4.0 ``GPTSFTPackedParquetDataset.validate_row``); the problem or None."""
    if len(loss_mask) != len(input_ids):
        return f"loss_mask length ({len(loss_mask)}) != input_ids length ({len(input_ids)})"
    if len(seq_start_id) == 0 or seq_start_id[0] != 0:
        return "seq_start_id must start with 0"
    for i, start in enumerate(seq_start_id):
        if start >= len(input_ids):
            return f"seq_start_id[{i}]={start} >= len(input_ids)={len(input_ids)}"
        if i and start < seq_start_id[i - 1]:
            return f"seq_start_id is not non-decreasing at index {i}"
    return None


def sequences(
    input_ids: Sequence[int], loss_mask: Sequence[int], seq_start_id: Sequence[int], eos_id: int | None = None
) -> list[PackedSequence]:
    """Split one packed row with Megatron-Bridge's slicing rule (module docstring); raises ValueError on a bad row."""
    import numpy as np

    problem = check_row(input_ids, loss_mask, seq_start_id)
    if problem:
        raise ValueError(problem)
    ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.asarray(loss_mask, dtype=np.int8)
    bounds = [*[int(s) for s in seq_start_id], len(ids)]
    out = []
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        if e - s < 1:
            continue
        tokens, labels, m = ids[s : e - 1], ids[s + 1 : e], mask[s : e - 1].copy()
        if eos_id is not None:
            m[tokens == eos_id] = 0
        out.append(PackedSequence(tokens, labels, m))
    return out


def read_rows(path: str | Path) -> Iterator[tuple[list[int], list[int], list[int]]]:
    """``(input_ids, loss_mask, seq_start_id)`` per row of one packed Parquet file."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(COLUMNS))
    cols = table.to_pydict()
    yield from zip(cols["input_ids"], cols["loss_mask"], cols["seq_start_id"], strict=True)
