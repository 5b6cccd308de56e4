"""``data prep sft``: chat conversations -> template -> tokens + loss mask -> packed Parquet.

Output per shard and split: ``shards/<key>/<split>.parquet`` with one row per pack and columns
``input_ids`` (list<int32>, the packed sequences back to back, no padding), ``loss_mask``
(list<int8>, aligned with input_ids: 1 where that token is a training target, i.e. assistant
content and its end-of-turn marker) and ``seq_start_id`` (list<int32>, start offset of each
sequence in the pack; the next start, or the pack length, ends it). Consumers pad each pack to
``pack.size`` (``manifest.json`` gives ``pad_id``) and shift the mask by one for next-token labels.
Packing efficiency (padding fraction at ``pack.size``) is reported in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import atomic_open
from nemotron.data_prep.chat import BadConversation, tokenize_conversation
from nemotron.data_prep.common import tokenizer_summary, validate
from nemotron.data_prep.packing import best_fit_decreasing
from nemotron.data_prep.plan import Plan, Shard
from nemotron.data_prep.runner import (
    SHARDS,
    Counters,
    ShardJob,
    output_hashes,
    prepare_output_dir,
    run_stage,
    shard_result,
)
from nemotron.data_prep.sources import BadRows, ChunkReader
from nemotron.data_prep.splits import make_assigner, split_names
from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec

STAGE = "sft"


def prepare_sft(
    cfg: Any,
    output_dir: str | Path,
    progress: bool = True,
    *,
    rank: int | None = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Render, mask and pack ``cfg.data.inputs`` into ``output_dir``; returns the artifact metadata.

    ``cfg`` is a validated ``DataPrepSftConfig`` (a plain dict is validated here). The result is the
    manifest (Parquet files per split, packs, tokens, padding fraction, tokenizer, plan hash) plus
    ``finalized``, ``publish`` and ``run`` as for ``prepare_pretrain``.
    """
    from nemotron.config.schemas.data_prep import DataPrepSftConfig

    cfg = validate(cfg, DataPrepSftConfig)
    out = prepare_output_dir(output_dir)

    spec = resolve_spec(cfg.tokenizer)
    tok = get_tokenizer(spec)
    template = cfg.tokenizer.chat_template
    for marker in filter(None, (template.end_of_turn,)):
        ids, _ = tok.encode_with_offsets(marker)
        if len(ids) != 1:
            from nemotron.errors import UserError

            raise UserError(
                f"chat template marker {marker!r} is not a single token of {spec.path}",
                hint="add it to the tokenizer's special tokens (tiktoken: tokenizer.special_tokens)",
            )
    settings = {
        "messages_field": cfg.data.messages_field,
        "fractions": {"valid": cfg.data.valid_fraction},
        "seed": cfg.seed,
        "tokenizer": spec.describe(),
        "vocab_size": tok.vocab_size,
        "pad_id": tok.pad_id(),
        "chat_template": template.model_dump(),
        "pack_size": cfg.pack.size,
        "truncate": cfg.pack.truncate,
        "format_version": 1,
    }
    return run_stage(
        STAGE, cfg, out, settings, process_shard, _finalize,
        tokenizer=spec, rank=rank, world_size=world_size, progress=progress,
    )  # fmt: skip


def process_shard(job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    """Tokenize, mask and pack one shard; one Parquet file per split. Runs in a worker process."""
    import json as _json

    import numpy as np

    from nemotron.config.schemas.data_prep import ChatTemplate

    assert job.tokenizer is not None
    tok = get_tokenizer(job.tokenizer)
    s = job.settings
    template = ChatTemplate.model_validate(s["chat_template"])
    size = s["pack_size"]
    field = s["messages_field"]
    assign = make_assigner(s["seed"], s["fractions"])
    splits = split_names(s["fractions"])
    seqs: dict[str, list[tuple[Any, Any]]] = {name: [] for name in splits}
    extra = {"truncated": 0, "dropped_too_long": 0, "dropped_no_target": 0}
    bad = BadRows()
    reader = ChunkReader(shard.piece, [field], bad, batch_rows=512)
    for records, nbytes in reader.chunks():
        docs = tokens = 0
        for where, record in records:
            messages = record.get(field)
            if messages is None:
                bad.add("missing_field", where)
                continue
            try:
                ids, mask = tokenize_conversation(tok, messages, template)
            except BadConversation as err:
                bad.add(str(err.args[0]), where)
                continue
            if len(ids) > size:
                if not s["truncate"]:
                    extra["dropped_too_long"] += 1
                    continue
                ids, mask = ids[:size], mask[:size]
                extra["truncated"] += 1
                if not mask.any():
                    extra["dropped_no_target"] += 1
                    continue
            key = _json.dumps(messages, sort_keys=True, ensure_ascii=False)
            seqs[assign(key)].append((ids, mask))
            docs += 1
            tokens += len(ids)
        counters.add(nbytes, docs, tokens)

    outputs: dict[str, Any] = {}
    split_stats: dict[str, Any] = {}
    for name in splits:
        items = seqs[name]
        packs = best_fit_decreasing([len(ids) for ids, _ in items], size)
        rel = f"{SHARDS}/{shard.key}/{name}.parquet"
        outputs[rel] = _write_packs(Path(job.output_dir) / rel, items, packs)
        n_tokens = sum(len(ids) for ids, _ in items)
        split_stats[name] = {
            "sequences": len(items),
            "packs": len(packs),
            "tokens": n_tokens,
            "target_tokens": int(sum(int(np.count_nonzero(m)) for _, m in items)),
            "pad_tokens": len(packs) * size - n_tokens,
        }
    return shard_result(
        job, shard, outputs, reader, bad, split_stats,
        docs=sum(v["sequences"] for v in split_stats.values()),
        tokens=sum(v["tokens"] for v in split_stats.values()),
        **extra,
    )  # fmt: skip


def _write_packs(path: Path, items: list[tuple[Any, Any]], packs: list[list[int]]) -> dict[str, Any]:
    """One Parquet row per pack, built from flat arrays + offsets (no per-token Python objects)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids_parts, mask_parts, starts_parts = [], [], []
    tok_offsets = [0]
    start_offsets = [0]
    for pack in packs:
        pos = 0
        starts = []
        for i in pack:
            ids, mask = items[i]
            ids_parts.append(ids)
            mask_parts.append(mask)
            starts.append(pos)
            pos += len(ids)
        starts_parts.append(np.asarray(starts, dtype=np.int32))
        tok_offsets.append(tok_offsets[-1] + pos)
        start_offsets.append(start_offsets[-1] + len(starts))

    def flat(parts: list[Any], dtype: Any) -> Any:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    offsets = pa.array(np.asarray(tok_offsets, dtype=np.int32))
    table = pa.table(
        {
            "input_ids": pa.ListArray.from_arrays(offsets, pa.array(flat(ids_parts, np.int32))),
            "loss_mask": pa.ListArray.from_arrays(offsets, pa.array(flat(mask_parts, np.int8))),
            "seq_start_id": pa.ListArray.from_arrays(
                pa.array(np.asarray(start_offsets, dtype=np.int32)), pa.array(flat(starts_parts, np.int32))
            ),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    with atomic_open(path) as writer:
        writer.write(memoryview(sink.getvalue()))
    return {"size": writer.size, "sha256": writer.hexdigest(), "rows": len(packs)}


def _finalize(plan: Plan, receipts: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    s = plan.settings
    size = s["pack_size"]
    splits: dict[str, Any] = {}
    for name in split_names(s["fractions"]):
        files, packs, seqs, tokens, target, pad = [], 0, 0, 0, 0, 0
        for shard, receipt in zip(plan.shards, receipts, strict=True):
            st = receipt["stats"]["splits"][name]
            if st["packs"]:
                files.append(f"{SHARDS}/{shard.key}/{name}.parquet")
            packs += st["packs"]
            seqs += st["sequences"]
            tokens += st["tokens"]
            target += st["target_tokens"]
            pad += st["pad_tokens"]
        splits[name] = {
            "files": files,
            "packs": packs,
            "sequences": seqs,
            "tokens": tokens,
            "target_tokens": target,
            "pad_tokens": pad,
            "padding_fraction": round(pad / (packs * size), 6) if packs else 0.0,
        }
    total_pad = sum(v["pad_tokens"] for v in splits.values())
    total_slots = sum(v["packs"] for v in splits.values()) * size
    return {
        "kind": "sft-data",
        "format": "packed-parquet",
        "columns": ["input_ids", "loss_mask", "seq_start_id"],
        "pack_size": size,
        "pad_id": s["pad_id"],
        "padding_fraction": round(total_pad / total_slots, 6) if total_slots else 0.0,
        "packing_efficiency": round(1 - total_pad / total_slots, 6) if total_slots else 0.0,
        "truncated": sum(r["stats"]["truncated"] for r in receipts),
        "dropped_too_long": sum(r["stats"]["dropped_too_long"] for r in receipts),
        "dropped_no_target": sum(r["stats"]["dropped_no_target"] for r in receipts),
        "num_sequences": sum(v["sequences"] for v in splits.values()),
        "num_tokens": sum(v["tokens"] for v in splits.values()),
        "splits": splits,
        "tokenizer": tokenizer_summary(s),
        "chat_template": s["chat_template"],
        "files": output_hashes(receipts),
    }
