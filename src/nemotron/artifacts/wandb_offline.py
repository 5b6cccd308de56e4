"""Read what an offline W&B run really wrote: the artifact records in its ``run-<id>.wandb`` file.

``nemotron artifacts sync`` uses it to check that an offline run still holds the artifact before
uploading it, and the tests use it to read back what the mirror logged. The file is a LevelDB-style
log (the format wandb's own ``sync`` replays): a 7-byte header (``:W&B``, magic 0xBEE1, version 0),
then 32 KiB blocks of chunks ``<crc32 u32><length u16><type u8><data>`` (type 1 full, 2 first,
3 middle, 4 last), each record a ``wandb_internal_pb2.Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_raw_records(path: Path) -> list[bytes]:
    """The serialized records of a ``.wandb`` file, in order (a torn tail is ignored)."""
    data = Path(path).read_bytes()
    if len(data) < HEADER.size:
        return []
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    records: list[bytes] = []
    pending = b""
    pos = HEADER.size
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:
            pos += left  # zero padding to the end of the block
            continue
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + length]
        if len(chunk) < length:
            break
        pos += CHUNK.size + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
            pending = b""
    return records


def wandb_file(run_dir: Path) -> Path:
    """The ``run-<id>.wandb`` file of an offline run directory."""
    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb in {run_dir}")
    return files[0]


def logged_artifacts(run_dir: Path) -> list[dict[str, Any]]:
    """Artifacts an offline run logged: name, type, aliases, metadata, references, run id, project."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for raw in iter_raw_records(wandb_file(run_dir)):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") != "artifact":
            continue
        art = record.artifact
        out.append(
            {
                "name": art.name,
                "type": art.type,
                "aliases": list(art.aliases),
                "metadata": json.loads(art.metadata) if art.metadata else {},
                "references": [entry.ref for entry in art.manifest.contents if entry.ref],
                "files": [entry.path for entry in art.manifest.contents],
                "run_id": art.run_id,
                "project": art.project,
            }
        )
    return out


def run_info(run_dir: Path) -> dict[str, Any]:
    """The run record of an offline run (id, project, job type, group, display name)."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in iter_raw_records(wandb_file(run_dir)):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "run":
            run = record.run
            return {
                "run_id": run.run_id,
                "project": run.project,
                "entity": run.entity,
                "job_type": run.job_type,
                "group": run.run_group,
                "name": run.display_name,
            }
    return {}


def wait_for_artifact(run_dir: Path, name: str, timeout: float = 15.0) -> dict[str, Any] | None:
    """Poll until the offline run's log holds artifact ``name`` (or ``timeout``); its record or None.

    ``run.finish()`` can return before wandb's service has flushed the transaction log to disk, so
    the mirror checks what is really written before it reports an offline publish as recorded.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            for record in logged_artifacts(run_dir):
                if record["name"] == name:
                    return record
        except (FileNotFoundError, ValueError):
            pass
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
