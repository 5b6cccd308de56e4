"""``data prep rl``: prompt/answer records -> ``train.jsonl`` / ``val.jsonl`` + ``manifest.json``.

Each output line is ``{"id", "prompt", "answer", ...keep_fields}`` (answers are stored as strings).
The split is by content hash of the prompt, so a prompt that appears twice never lands in both
train and val. Shards write their own parts (``shards/<key>/{train,val}.jsonl``); finalization
concatenates them in plan order, so the result does not depend on workers or interruptions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import atomic_open
from nemotron.data_prep.common import validate
from nemotron.data_prep.plan import Plan, Shard
from nemotron.data_prep.runner import (
    SHARDS,
    Counters,
    ShardJob,
    prepare_output_dir,
    run_stage,
    shard_result,
)
from nemotron.data_prep.sources import BadRows, ChunkReader
from nemotron.data_prep.splits import make_assigner

STAGE = "rl"
FILES = {"train": "train.jsonl", "valid": "val.jsonl"}


def prepare_rl(
    cfg: Any,
    output_dir: str | Path,
    progress: bool = True,
    *,
    rank: int | None = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Validate and split prompt/answer records into ``output_dir``; returns the artifact metadata.

    ``cfg`` is a validated ``DataPrepRlConfig`` (a plain dict is validated here). The result is the
    manifest (train/val file names, counts, fields, sha256s, plan hash) plus ``finalized``,
    ``publish`` and ``run``.
    """
    from nemotron.config.schemas.data_prep import DataPrepRlConfig

    cfg = validate(cfg, DataPrepRlConfig)
    out = prepare_output_dir(output_dir)
    d = cfg.data
    settings = {
        "prompt_field": d.prompt_field,
        "answer_field": d.answer_field,
        "id_field": d.id_field,
        "keep_fields": list(d.keep_fields),
        "fractions": {"valid": d.valid_fraction},
        "seed": cfg.seed,
        "format_version": 1,
    }
    return run_stage(
        STAGE, cfg, out, settings, process_shard, _finalize, rank=rank, world_size=world_size, progress=progress
    )


def _text(value: Any) -> str | None:
    """Prompts/answers as strings: numbers are accepted (answers are often numeric), others are not."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def process_shard(job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    s = job.settings
    pf, af, idf, keep = s["prompt_field"], s["answer_field"], s["id_field"], s["keep_fields"]
    dataset = s["dataset_names"][shard.dataset]
    assign = make_assigner(s["seed"], s["fractions"])
    bad = BadRows()
    reader = ChunkReader(shard.piece, [pf, af, *([idf] if idf else []), *keep], bad)
    base = Path(job.output_dir) / SHARDS / shard.key
    counts = {"train": 0, "valid": 0}
    with atomic_open(base / FILES["train"]) as train, atomic_open(base / FILES["valid"]) as valid:
        writers = {"train": train, "valid": valid}
        for records, nbytes in reader.chunks():
            docs = 0
            for where, record in records:
                if pf not in record or af not in record:
                    bad.add("missing_field", where)
                    continue
                prompt, answer = _text(record[pf]), _text(record[af])
                if prompt is None or answer is None:
                    bad.add("not_a_string", where)
                    continue
                if not prompt.strip() or not answer.strip():
                    bad.add("empty_text", where)
                    continue
                rid = record.get(idf) if idf else None
                if rid is None:
                    digest = hashlib.sha1(f"{prompt}\x00{answer}".encode("utf-8", "surrogatepass")).hexdigest()
                    rid = f"{dataset}-{digest[:16]}"
                row = {"id": str(rid), "prompt": prompt, "answer": answer}
                for name in keep:
                    if name in record and name not in row:
                        row[name] = record[name]
                split = assign(prompt)
                writers[split].write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass"))
                counts[split] += 1
                docs += 1
            counters.add(nbytes, docs, 0)
    outputs = {
        f"{SHARDS}/{shard.key}/{FILES[name]}": {"size": w.size, "sha256": w.hexdigest()} for name, w in writers.items()
    }
    splits = {name: {"records": n} for name, n in counts.items()}
    return shard_result(job, shard, outputs, reader, bad, splits, docs=counts["train"] + counts["valid"], tokens=0)


def _finalize(plan: Plan, receipts: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Concatenate shard parts in plan order into train.jsonl / val.jsonl."""
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name, filename in FILES.items():
        with atomic_open(out / filename) as writer:
            for shard in plan.shards:
                with open(out / SHARDS / shard.key / filename, "rb") as part:
                    while block := part.read(1 << 22):
                        writer.write(block)
        files[filename] = {"size": writer.size, "sha256": writer.hexdigest()}
        counts[name] = sum(r["stats"]["splits"][name]["records"] for r in receipts)
    s = plan.settings
    return {
        "kind": "rl-data",
        "format": "jsonl",
        "train": FILES["train"],
        "val": FILES["valid"],
        "train_path": str(out / FILES["train"]),
        "val_path": str(out / FILES["valid"]),
        "num_train": counts["train"],
        "num_val": counts["valid"],
        "fields": ["id", "prompt", "answer", *s["keep_fields"]],
        "files": files,
    }
