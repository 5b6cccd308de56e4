"""Input side of data prep: expand ``data.inputs`` into files, cut files into shards, read records.

Corpus formats: JSONL (``.jsonl``/``.json``/``.ndjson``), the same compressed with gzip (``.gz``)
or zstandard (``.zst``/``.zstd``), Parquet, Arrow IPC (``.arrow``), and Hugging Face ``datasets``
directories written by ``save_to_disk`` (their ``state.json`` lists the Arrow files). A shard is a
contiguous, line-aligned byte range of a JSONL file, a run of row groups of a Parquet file, or a
whole compressed JSONL or Arrow file (compressed streams cannot be seeked). Boundaries depend only
on file size, content and ``shard_size_mb``, so the plan is reproducible. Reading streams (one
read chunk, row group batch or Arrow record batch at a time), yields parsed records and counts bad
rows (invalid JSON, missing field, empty text) instead of failing on them. Record fields may be
dotted paths into nested objects (``meta.text``).

``read_records(path)`` is the one way to read any supported file from its start (e.g. to check
that its first rows parse before a job is submitted); the stages read shards with ``ChunkReader``,
which shares every format's reader with it.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nemotron.config.overrides import get_dotted
from nemotron.errors import UserError
from nemotron.paths import REPO_ROOT

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
GZ_SUFFIXES = tuple(s + ".gz" for s in JSONL_SUFFIXES)
ZST_SUFFIXES = tuple(s + z for s in JSONL_SUFFIXES for z in (".zst", ".zstd"))
PARQUET_SUFFIXES = (".parquet",)
ARROW_SUFFIXES = (".arrow",)
DATA_SUFFIXES = GZ_SUFFIXES + ZST_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES + ARROW_SUFFIXES
WHOLE_FILE_FORMATS = ("jsonl.gz", "jsonl.zst", "arrow")  # not seekable by line: one shard per file
HF_DATASET_STATE = "state.json"  # datasets' save_to_disk: lists the Arrow data files in order
HF_DATASET_DICT = "dataset_dict.json"
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
    """``jsonl``, ``jsonl.gz``, ``jsonl.zst``, ``parquet`` or ``arrow``, from the file name."""
    name = path.name.lower()
    if name.endswith(GZ_SUFFIXES):
        return "jsonl.gz"
    if name.endswith(ZST_SUFFIXES):
        return "jsonl.zst"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(ARROW_SUFFIXES):
        return "arrow"
    raise UserError(
        f"unsupported input file '{path}'",
        hint="inputs must be JSONL (.jsonl/.json/.ndjson, optionally .gz/.zst), Parquet, Arrow (.arrow) "
        "or a Hugging Face datasets save_to_disk directory",
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
        saved = _hf_saved_dataset_files(resolved)
        if saved is not None:
            return saved
        found = [p for p in resolved.rglob("*") if p.is_file() and _is_data_file(p)]
        return sorted(found)
    if resolved.is_file():
        return [resolved]
    return []


def _is_data_file(path: Path) -> bool:
    return path.name.lower().endswith(DATA_SUFFIXES) and path.name not in (
        HF_DATASET_STATE,
        HF_DATASET_DICT,
        "dataset_info.json",
    )


def _hf_saved_dataset_files(directory: Path) -> list[Path] | None:
    """The Arrow files of a ``datasets`` ``save_to_disk`` directory in their order, or None if it is not one."""
    if (directory / HF_DATASET_DICT).is_file():
        try:
            splits = json.loads((directory / HF_DATASET_DICT).read_text()).get("splits", [])
        except (OSError, ValueError):
            splits = []
        raise UserError(
            f"{directory} is a datasets DatasetDict (splits: {', '.join(map(str, splits)) or '?'})",
            hint=f"point data.inputs at one split's directory, e.g. {directory / (splits[0] if splits else 'train')}",
        )
    state = directory / HF_DATASET_STATE
    if not state.is_file():
        return None
    try:
        names = [entry["filename"] for entry in json.loads(state.read_text())["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"{state} is not a datasets save_to_disk state file", hint="re-save the dataset with save_to_disk"
        ) from None
    files = [directory / name for name in names]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UserError(f"saved dataset {directory} lacks {missing[0].name}", hint="re-save the dataset")
    return files


def _default_name(pattern: str) -> str:
    """A readable dataset name: the last path part that is not just a glob (``web/*.jsonl`` -> ``web``)."""
    for part in reversed(Path(pattern.rstrip("/")).parts):
        base = part
        for suffix in DATA_SUFFIXES:
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
    if file.format in WHOLE_FILE_FORMATS:
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


MISSING = object()  # get_field's "no such field" (distinct from a JSON null)


def get_field(record: dict[str, Any], name: str) -> Any:
    """``record[name]``; a dotted ``name`` walks nested objects (``meta.text``) unless the record
    has that literal key. Returns ``MISSING`` when a step is absent or not an object."""
    if name in record:
        return record[name]
    if "." not in name:
        return MISSING
    return get_dotted(record, name, MISSING)


def _columns(fields: list[str], names: list[str]) -> list[str]:
    """Top-level columns to read for ``fields`` (a dotted field reads its first part's column)."""
    out: list[str] = []
    for f in fields:
        column = f if f in names else f.split(".")[0]
        if column in names and column not in out:
            out.append(column)
    return out


class ZstdFrames:
    """Decompressed bytes of a zstandard file with ``read(size)``: every concatenated frame (pzstd
    and many corpus writers emit several), and an error for a file cut inside a frame, which
    ``zstandard``'s own stream reader reports as a normal end of data."""

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._parts: list[bytes] = []
        self._have = 0
        self._in_frame = False

    def read(self, size: int) -> bytes:
        while self._have < size:
            data = self._raw.read(1 << 20)
            if not data:
                if self._in_frame:
                    raise EOFError("the file ends inside a zstandard frame (truncated?)")
                break
            self._feed(data)
        joined = b"".join(self._parts)
        out, rest = joined[:size], joined[size:]
        self._parts, self._have = ([rest] if rest else []), len(rest)
        return out

    def _feed(self, data: bytes) -> None:
        while data:
            self._in_frame = True
            chunk = self._obj.decompress(data)
            if chunk:
                self._parts.append(chunk)
                self._have += len(chunk)
            if not self._obj.eof:
                return
            data = self._obj.unused_data  # the next frame starts here
            self._obj = self._dctx.decompressobj()
            self._in_frame = False


@contextlib.contextmanager
def open_jsonl_stream(path: str, fmt: str) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(decompressed byte stream, underlying file) of a JSONL file: plain, gzip or zstandard.

    The underlying file's position is how far into the compressed input reading has got (progress).
    """
    with open(path, "rb") as raw:
        if fmt == "jsonl.gz":
            with gzip.open(raw) as fh:
                yield fh, raw
        elif fmt == "jsonl.zst":
            yield ZstdFrames(raw), raw  # type: ignore[misc]
        else:
            yield raw, raw


class ChunkReader:
    """Reads one piece in chunks of records, counting rows, bad rows and bytes consumed.

    ``fields`` are the fields the stage needs, possibly dotted (Parquet and Arrow read only their
    top-level columns). Each yielded chunk is a list of ``(where, record)`` where ``record`` is a
    dict; rows that fail to parse are recorded in ``bad`` and not yielded.
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
        readers: dict[str, Callable[[], Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]]] = {
            "jsonl": self._jsonl_range,
            "jsonl.gz": self._jsonl_stream,
            "jsonl.zst": self._jsonl_stream,
            "parquet": self._parquet,
            "arrow": self._arrow,
        }
        errors: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError)
        if fmt == "jsonl.zst":
            import zstandard

            errors += (zstandard.ZstdError,)
        try:
            yield from readers[fmt]()
        except UserError:
            raise
        except errors as exc:
            detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise UserError(
                f"cannot read {self.piece.file.path} as {fmt}: {detail}",
                hint="check that the file is complete and that its name says its format",
            ) from None

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

    def _jsonl_stream(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        """A whole compressed JSONL file; ``where`` offsets are into the decompressed text."""
        size = self.piece.file.size
        with open_jsonl_stream(self.piece.file.path, self.piece.file.format) as (fh, raw):
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
        columns = _columns(self.fields, pf.schema_arrow.names)
        total_rows = sum(pf.metadata.row_group(rg).num_rows for rg in self.piece.row_groups) or 1
        row = 0
        for rg in self.piece.row_groups:
            for batch in pf.iter_batches(batch_size=self.batch_rows, row_groups=[rg], columns=columns):
                yield (
                    self._batch_records(batch, columns, path, row),
                    int(self.piece.bytes * batch.num_rows / total_rows),
                )
                row += batch.num_rows

    def _arrow(self) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], int]]:
        """An Arrow IPC file (stream format, as ``datasets`` writes, or the random-access file
        format), one record batch at a time from a memory map."""
        import pyarrow as pa

        path = self.piece.file.path
        with pa.memory_map(path) as source:
            try:
                stream = pa.ipc.open_stream(source)
                schema, batches = stream.schema, iter(stream)
            except pa.ArrowInvalid:  # not a stream: the random-access file format
                source.seek(0)
                reader = pa.ipc.open_file(source)
                schema = reader.schema
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            columns = _columns(self.fields, schema.names)
            row = done = 0
            for batch in batches:
                for start in range(0, batch.num_rows, self.batch_rows):
                    part = batch.slice(start, self.batch_rows)
                    nbytes = min(part.nbytes, self.piece.bytes - done)
                    done += nbytes
                    yield self._batch_records(part, columns, path, row), nbytes
                    row += part.num_rows
            if done < self.piece.bytes:
                yield [], self.piece.bytes - done

    def _batch_records(self, batch: Any, columns: list[str], path: str, row: int) -> list[tuple[str, dict[str, Any]]]:
        records = batch.select(columns).to_pylist() if columns else [{} for _ in range(batch.num_rows)]
        self.rows += len(records)
        return [(f"{path}#row{row + i}", record) for i, record in enumerate(records)]


def read_records(
    path: str | os.PathLike[str], fields: list[str] | None = None, bad: BadRows | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of one corpus file of any supported format, from its start, streamed.

    The single entry point for reading an input file outside a shard (e.g. checking at submit time
    that the first rows parse: ``next(read_records(p))``). ``fields`` limits the columns read from
    Parquet/Arrow (all when None); unparsable rows go to ``bad`` (and are skipped) as in a shard.
    Raises UserError for an unsupported name or an unreadable file.
    """
    file = Path(path)
    stat = file.stat()
    info = InputFile(str(file.resolve()), file_format(file), stat.st_size, stat.st_mtime_ns)
    if info.format == "parquet":
        import pyarrow.parquet as pq

        piece = Piece(info, row_groups=tuple(range(pq.ParquetFile(info.path).metadata.num_row_groups)), bytes=info.size)
        names = pq.ParquetFile(info.path).schema_arrow.names
    else:
        piece = Piece(info, 0, info.size, bytes=info.size)
        names = None
    if fields is None:
        fields = names if names is not None else _arrow_names(info)
    reader = ChunkReader(piece, fields, bad if bad is not None else BadRows())
    for records, _ in reader.chunks():
        yield from records


def _arrow_names(info: InputFile) -> list[str]:
    """Column names of an Arrow file (JSONL has no fixed columns: an empty list, which it ignores)."""
    if info.format != "arrow":
        return []
    import pyarrow as pa

    with pa.memory_map(info.path) as source:
        try:
            return list(pa.ipc.open_stream(source).schema.names)
        except pa.ArrowInvalid:
            source.seek(0)
            return list(pa.ipc.open_file(source).schema.names)
