"""Megatron indexed-dataset writer (.bin tokens + .idx index), streamed and atomic.

Byte layout matches megatron-core's ``IndexedDatasetBuilder`` for one sequence per document (what
Megatron-LM's preprocess_data.py writes without ``--split-sentences``): the .idx is
``MMIDIDX\\0\\0``, u64 version 1, u8 dtype code, u64 sequence count, u64 document count (docs + 1),
int32 lengths, int64 byte pointers, int64 document indices ``0..docs``. Tokens go to the .bin as
they come; only the per-document lengths (4 bytes each) stay in memory until the index is written.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import HashingWriter, tmp_path

INDEX_HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {"uint16": 8, "int32": 4}


def optimal_dtype(vocab_size: int) -> str:
    """Megatron's rule: uint16 when every id fits comfortably (< 65500), else int32."""
    return "uint16" if vocab_size < 65500 else "int32"


class IndexedWriter:
    """Writes ``<prefix>.bin`` and ``<prefix>.idx``; both appear only on ``close`` (temp + rename)."""

    def __init__(self, prefix: Path, dtype: str) -> None:
        import numpy as np

        self.prefix = prefix
        self.dtype = np.dtype(dtype)
        self.dtype_name = dtype
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self._bin_final = prefix.with_name(prefix.name + ".bin")
        self._idx_final = prefix.with_name(prefix.name + ".idx")
        self._bin_tmp = tmp_path(self._bin_final)
        self._fh = open(self._bin_tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._bin = HashingWriter(self._fh)
        self._lengths: list[Any] = []  # numpy int32 arrays, one per add call
        self.num_docs = 0
        self.num_tokens = 0

    def add_documents(self, flat_tokens: Any, lengths: Any) -> None:
        """Append documents given as one flat token array (already cast to dtype) and their lengths."""
        import numpy as np

        if len(lengths) == 0:
            return
        self._bin.write(memoryview(np.ascontiguousarray(flat_tokens, dtype=self.dtype)).cast("B"))
        lengths = np.asarray(lengths, dtype=np.int32)
        self._lengths.append(lengths)
        self.num_docs += len(lengths)
        self.num_tokens += int(lengths.sum(dtype=np.int64))

    def close(self) -> dict[str, dict[str, Any]]:
        """Finish both files atomically; returns {'<name>.bin': {size, sha256}, '<name>.idx': {...}}."""
        import numpy as np

        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        doc_idx = np.arange(len(lengths) + 1, dtype=np.int64)
        idx_tmp = tmp_path(self._idx_final)
        try:
            with open(idx_tmp, "wb") as fh:
                idx = HashingWriter(fh)
                idx.write(INDEX_HEADER)
                idx.write(struct.pack("<Q", 1))
                idx.write(struct.pack("<B", DTYPE_CODES[self.dtype_name]))
                idx.write(struct.pack("<Q", len(lengths)))
                idx.write(struct.pack("<Q", len(doc_idx)))
                idx.write(lengths.astype("<i4").tobytes())
                idx.write(pointers.astype("<i8").tobytes())
                idx.write(doc_idx.astype("<i8").tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self._bin_tmp, self._bin_final)
            os.replace(idx_tmp, self._idx_final)
        except BaseException:
            idx_tmp.unlink(missing_ok=True)
            self._bin_tmp.unlink(missing_ok=True)
            raise
        return {
            self._bin_final.name: {"size": self._bin.size, "sha256": self._bin.hexdigest()},
            self._idx_final.name: {"size": idx.size, "sha256": idx.hexdigest()},
        }

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._bin_tmp.unlink(missing_ok=True)
