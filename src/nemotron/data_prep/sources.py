"""Input side of data prep: expand ``data.inputs`` into files, cut files into shards, read records.

A shard is a contiguous, line-aligned byte range of a JSONL file, a run of row groups of a Parquet
file, or a whole gzipped JSONL file (gzip cannot be seeked). Boundaries depend only on file size,
content and ``shard_size_mb``, so the plan is reproducible. Reading yields parsed records and counts
bad rows (invalid JSON, missing field, empty text) instead of failing on them.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.paths import REPO_ROOT

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
GZ_SUFFIXES = tuple(s + ".gz" for s in JSONL_SUFFIXES)
PARQUET_SUFFIXES = (".parquet",)
READ_CHUNK = 4 << 20  # bytes of JSONL read at a time: bounds memory per worker
MAX_EXAMPLES = 5  # bad-row examples kept per shard for the error message


def resolve_user_path(path: str) -> Path:
    """Absolute path for a config path: absolute as is; relative against the cwd if it exists there,
    else against the repository root (where tiny.yaml's assets live)."""
    expanded = Path(os.path.expandvars(os.path.expanduser(path)))
    if expanded.is_absolute():
        return expanded
    cwd_path = Path.cwd() / expanded
    if cwd_path.exists() or glob.has_magic(str(expanded)) and glob.glob(str(cwd_path), recursive=True):
        return cwd_path.resolve() if cwd_path.exists() else cwd_path
    repo_path = REPO_ROOT / expanded
    if repo_path.exists() or glob.has_magic(str(expanded)) and glob.glob(str(repo_path), recursive=True):
        return repo_path
    return cwd_path


def file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(GZ_SUFFIXES):
        return "jsonl.gz"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise UserError(
        f"unsupported input file '{path}'",
        hint="inputs must be JSONL (.jsonl/.json/.ndjson, optionally .gz) or Parquet (.parquet)",
    )


@dataclass(frozen=True)
class InputFile:
    """One input file and the fingerprint that keys its shards (path, size, mtime)."""

    path: str
    format: str
    size: int
    mtime_ns: int

    def fingerprint(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class Dataset:
    """One ``data.inputs`` entry after glob expansion."""

    index: int
    name: str
    weight: float | None
    pattern: str
    files: tuple[InputFile, ...]


def _expand(pattern: str) -> list[Path]:
    resolved = resolve_user_path(pattern)
    if glob.has_magic(str(resolved)):
        matches = [Path(p) for p in glob.glob(str(resolved), recursive=True)]
        return sorted(p for p in matches if p.is_file())
    if resolved.is_dir():
        found = [p for p in resolved.rglob("*") if p.is_file() and _is_data_file(p)]
        return sorted(found)
    if resolved.is_file():
        return [resolved]
    return []


def _is_data_file(path: Path) -> bool:
    return path.name.lower().endswith(JSONL_SUFFIXES + GZ_SUFFIXES + PARQUET_SUFFIXES)


def _default_name(pattern: str) -> str:
    """A readable dataset name: the last path part that is not just a glob (``web/*.jsonl`` -> ``web``)."""
    for part in reversed(Path(pattern.rstrip("/")).parts):
        base = part
        for suffix in GZ_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES:
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
                break
        base = re.sub(r"\[[^\]]*\]|[*?]", "", base)
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-")
        if base:
            return base
    return "data"


def expand_inputs(inputs: list[Any]) -> list[Dataset]:
    """Turn the validated ``data.inputs`` list into datasets of concrete files (sorted, deduplicated)."""
    datasets: list[Dataset] = []
    names: set[str] = set()
    seen: dict[str, int] = {}
    for index, spec in enumerate(inputs):
        path, weight, name = spec.path, spec.weight, spec.name
        files = _expand(path)
        if not files:
            raise UserError(
                f"data.inputs[{index}]: no input files match '{path}'",
                hint="give an existing file, directory or glob (relative paths: cwd, then the repository root)",
            )
        infos = []
        for file in files:
            real = str(file.resolve())
            if real in seen:
                raise UserError(
                    f"data.inputs[{index}] and data.inputs[{seen[real]}] both include {real}",
                    hint="list each file once; use weights to up-weight a dataset",
                )
            seen[real] = index
            stat = file.stat()
            infos.append(InputFile(real, file_format(file), stat.st_size, stat.st_mtime_ns))
        name = name or _default_name(path)
        unique, n = name, 1
        while unique in names:
            n += 1
            unique = f"{name}-{n}"
        names.add(unique)
        datasets.append(Dataset(index, unique, weight, path, tuple(infos)))
    return datasets


@dataclass(frozen=True)
class Piece:
    """The part of one input file a shard reads: bytes [start, end) for JSONL, row groups for Parquet."""

    file: InputFile
    start: int = 0
    end: int = 0
    row_groups: tuple[int, ...] = ()
    bytes: int = 0  # input bytes this piece covers (progress and ETA)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file.fingerprint(), "format": self.file.format}
        if self.file.format == "parquet":
            out["row_groups"] = list(self.row_groups)
        else:
            out["range"] = [self.start, self.end]
        return out


def _jsonl_boundaries(path: str, size: int, target: int) -> list[int]:
    """Line-aligned cut points near multiples of ``target`` bytes (a line belongs to the range it starts in)."""
    cuts = [0]
    with open(path, "rb") as fh:
        pos = target
        while pos < size:
            fh.seek(pos - 1)
            fh.readline()  # a cut lands right after the first newline at or after pos - 1
            cut = fh.tell()
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
            pos = max(cut, pos) + target
    cuts.append(size)
    return cuts


def split_file(file: InputFile, target_bytes: int) -> list[Piece]:
    """Cut one file into pieces of roughly ``target_bytes`` input bytes."""
    if file.format == "jsonl":
        if file.size == 0:
            return [Piece(file, 0, 0, bytes=0)]
        cuts = _jsonl_boundaries(file.path, file.size, target_bytes)
        return [Piece(file, a, b, bytes=b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
    if file.format == "jsonl.gz":
        return [Piece(file, 0, file.size, bytes=file.size)]
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file.path).metadata
    pieces: list[Piece] = []
    group: list[int] = []
    group_bytes = 0
    for rg in range(meta.num_row_groups):
        rg_bytes = meta.row_group(rg).total_byte_size
        if group and group_bytes + rg_bytes > target_bytes:
            pieces.append(Piece(file, row_groups=tuple(group), bytes=group_bytes))
            group, group_bytes = [], 0
        group.append(rg)
        group_bytes += rg_bytes
    if group or not pieces:
        pieces.append(Piece(file, row_groups=tuple(group), bytes=group_bytes))
    return pieces


@dataclass
class BadRows:
    """Skipped rows by reason, with a few located examples for the error message."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_reason": dict(sorted(self.counts.items())), "examples": self.examples}


class ChunkReader:
    """Reads one piece in chunks of records, counting rows, bad rows and bytes consumed.

    ``fields`` are the top-level keys the stage needs (Parquet reads only those columns). Each
    yielded chunk is a list of ``(where, record)`` where ``record`` is a dict; rows that fail to
    parse are recorded in ``bad`` and not yielded.
    """

    def __init__(self, piece: Piece, fields: list[str], bad: BadRows, batch_rows: int = 2048) -> None:
        self.piece = piece
        self.fields = fields
        self.bad = bad
        self.batch_rows = batch_rows
        self.rows = 0

    def chunks(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        """Yields (records, input bytes consumed by this chunk)."""
        fmt = self.piece.file.format
        if fmt == "jsonl":
            yield from self._jsonl_range()
        elif fmt == "jsonl.gz":
            yield from self._jsonl_gz()
        else:
            yield from self._parquet()

    def _parse_lines(self, lines: list[bytes], base: int, offsets: list[int]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        loads = json.loads
        path = self.piece.file.path
        for line, off in zip(lines, offsets, strict=True):
            if not line.strip():
                continue
            self.rows += 1
            try:
                record = loads(line)
            except ValueError:
                self.bad.add("invalid_json", f"{path}@{base + off}")
                continue
            if not isinstance(record, dict):
                self.bad.add("not_an_object", f"{path}@{base + off}")
                continue
            out.append((f"{path}@{base + off}", record))
        return out

    @staticmethod
    def _split(buf: bytes) -> tuple[list[bytes], list[int]]:
        lines = buf.split(b"\n")
        offsets = []
        pos = 0
        for line in lines:
            offsets.append(pos)
            pos += len(line) + 1
        return lines, offsets

    def _jsonl_range(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        start, end = self.piece.start, self.piece.end
        with open(self.piece.file.path, "rb") as fh:
            fh.seek(start)
            pos = start
            carry = b""
            while pos < end:
                block = fh.read(min(READ_CHUNK, end - pos))
                if not block:
                    break
                pos += len(block)
                buf = carry + block
                base = pos - len(buf)
                if pos < end:
                    cut = buf.rfind(b"\n")
                    if cut < 0:
                        carry = buf
                        continue
                    carry = buf[cut + 1 :]
                    buf = buf[: cut + 1]
                else:
                    carry = b""
                lines, offsets = self._split(buf)
                yield self._parse_lines(lines, base, offsets), len(buf)
            if carry:
                lines, offsets = self._split(carry)
                yield self._parse_lines(lines, end - len(carry), offsets), len(carry)

    def _jsonl_gz(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        size = self.piece.file.size
        with open(self.piece.file.path, "rb") as raw, gzip.open(raw) as fh:
            carry = b""
            base = 0
            last_raw = 0
            while True:
                block = fh.read(READ_CHUNK)
                buf = carry + block
                if block:
                    cut = buf.rfind(b"\n")
                    if cut < 0:
                        carry = buf
                        continue
                    carry, buf = buf[cut + 1 :], buf[: cut + 1]
                else:
                    carry = b""
                if buf:
                    lines, offsets = self._split(buf)
                    consumed = min(raw.tell(), size) - last_raw
                    last_raw += consumed
                    yield self._parse_lines(lines, base, offsets), consumed
                    base += len(buf)
                if not block:
                    break

    def _parquet(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.piece.file.path)
        path = self.piece.file.path
        columns = [f for f in self.fields if f in pf.schema_arrow.names]
        total_rows = sum(pf.metadata.row_group(rg).num_rows for rg in self.piece.row_groups) or 1
        row = 0
        for rg in self.piece.row_groups:
            for batch in pf.iter_batches(batch_size=self.batch_rows, row_groups=[rg], columns=columns):
                records = batch.to_pylist() if columns else [{} for _ in range(batch.num_rows)]
                out = []
                for i, record in enumerate(records):
                    self.rows += 1
                    out.append((f"{path}#row{row + i}", record))
                row += batch.num_rows
                yield out, int(self.piece.bytes * batch.num_rows / total_rows)
