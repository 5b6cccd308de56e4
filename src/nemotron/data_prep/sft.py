"""``data prep sft``: chat conversations -> chat template -> tokens + loss mask -> packed Parquet.

Conversations (OpenAI ``messages`` with tool calls and reasoning, or ShareGPT ``conversations``; JSONL
or Parquet) are rendered with the tokenizer's own Jinja chat template (``nemotron.data_prep.chat``;
``tokenizer.chat_template=per_turn`` is the explicit fallback), split into training samples, and
packed best-fit-decreasing into ``pack.size``. The output format, including the label-aligned loss
mask Megatron-Bridge reads, is defined in ``nemotron.data_prep.packed_format``. Packing efficiency
and throughput (conversations/s, tokens/s) are reported in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import atomic_open
from nemotron.data_prep.chat import (
    BadConversation,
    PerTurnEncoder,
    TemplateEncoder,
    has_reasoning,
    parse_record,
    training_samples,
)
from nemotron.data_prep.common import tokenizer_summary, validate
from nemotron.data_prep.packed_format import ALIGNMENT, COLUMNS
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
    template_setting = cfg.tokenizer.chat_template
    per_turn = cfg.tokenizer.per_turn
    if template_setting == "per_turn":
        template: dict[str, Any] = {"kind": "per_turn", **per_turn.model_dump()}
        _check_single_token(tok, spec, per_turn.end_of_turn)
    else:
        from nemotron.data_prep.chat_template import compiled, find_template, special_tokens

        source, text = find_template(spec.path, template_setting)
        compiled(text)  # a syntax error is a one-line UserError here, before any worker starts
        template = {"kind": "jinja", "source": source, "template": text, "special_tokens": special_tokens(spec.path)}
    settings = {
        "messages_field": cfg.data.messages_field,
        "tools_field": cfg.data.tools_field,
        "kwargs_field": cfg.data.kwargs_field,
        "fractions": {"valid": cfg.data.valid_fraction},
        "seed": cfg.seed,
        "tokenizer": spec.describe(),
        "vocab_size": tok.vocab_size,
        "pad_id": tok.pad_id(),
        "eod_id": tok.eod_id,
        "chat_template": template,
        "template_kwargs": [cfg.chat.template_kwargs | spec_in.chat_template_kwargs for spec_in in cfg.data.inputs],
        "multi_turn_reasoning": cfg.chat.multi_turn_reasoning,
        "thinking_from_data": cfg.chat.thinking_from_data,
        "pack_size": cfg.pack.size,
        "truncate": cfg.pack.truncate,
        "format_version": 2,  # 2: loss_mask stored label-aligned (packed_format)
    }
    return run_stage(
        STAGE, cfg, out, settings, process_shard, _finalize,
        tokenizer=spec, rank=rank, world_size=world_size, progress=progress,
    )  # fmt: skip


def _check_single_token(tok: Any, spec: Any, marker: str) -> None:
    ids, _ = tok.encode_with_offsets(marker)
    if marker and len(ids) != 1:
        from nemotron.errors import UserError

        raise UserError(
            f"chat template marker {marker!r} is not a single token of {spec.path}",
            hint="add it to the tokenizer's special tokens (tiktoken: tokenizer.special_tokens)",
        )


def make_encoder(settings: dict[str, Any], tok: Any) -> TemplateEncoder | PerTurnEncoder:
    """The conversation encoder a worker uses (the compiled template is cached per process)."""
    from nemotron.config.schemas.data_prep import ChatTemplate
    from nemotron.data_prep.chat_template import ChatRenderer

    template = dict(settings["chat_template"])
    if template.pop("kind") == "per_turn":
        return PerTurnEncoder(ChatTemplate.model_validate(template), tok)
    return TemplateEncoder(ChatRenderer(template["template"], template["special_tokens"]), tok)


def process_shard(job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    """Render, mask and pack one shard; one Parquet file per split. Runs in a worker process."""
    import json as _json

    import numpy as np

    assert job.tokenizer is not None
    tok = get_tokenizer(job.tokenizer)
    s = job.settings
    encoder = make_encoder(s, tok)
    dataset_kwargs = s["template_kwargs"][shard.dataset]
    size = s["pack_size"]
    fields = [s["messages_field"], "conversations", s["tools_field"], s["kwargs_field"]]
    assign = make_assigner(s["seed"], s["fractions"])
    splits = split_names(s["fractions"])
    seqs: dict[str, list[tuple[Any, Any]]] = {name: [] for name in splits}
    extra = {"truncated": 0, "dropped_too_long": 0, "dropped_no_target": 0, "conversations": 0, "samples": 0}
    bad = BadRows()
    reader = ChunkReader(shard.piece, fields, bad, batch_rows=512)
    for records, nbytes in reader.chunks():
        docs = tokens = 0
        for where, record in records:
            try:
                conv = parse_record(record, s["messages_field"], s["tools_field"], s["kwargs_field"])
                kwargs = dataset_kwargs | conv.kwargs
                samples = training_samples(conv.messages, s["multi_turn_reasoning"])
                if s["thinking_from_data"] and "enable_thinking" not in kwargs:
                    kwargs = kwargs | {"enable_thinking": has_reasoning(conv.messages)}
                encoded = [encoder.encode(msgs, first, conv.tools, kwargs) for msgs, first in samples]
            except BadConversation as err:
                bad.add(str(err.args[0]), where)
                continue
            if not encoded:
                bad.add("no_trained_turn", where)
                continue
            split = assign(_json.dumps(conv.messages, sort_keys=True, ensure_ascii=False, default=str))
            extra["conversations"] += 1
            for ids, mask in encoded:
                if len(ids) > size:
                    if not s["truncate"]:
                        extra["dropped_too_long"] += 1
                        continue
                    ids, mask = ids[:size], mask[:size]
                    extra["truncated"] += 1
                    if not mask[1:].any():  # the first token is never a label
                        extra["dropped_no_target"] += 1
                        continue
                seqs[split].append((ids, mask))
                extra["samples"] += 1
                tokens += len(ids)
            docs += 1
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
            "target_tokens": int(sum(int(np.count_nonzero(m[1:])) for _, m in items)),
            "pad_tokens": len(packs) * size - n_tokens,
        }
    extra["template_fallbacks"] = encoder.fallbacks
    return shard_result(
        job, shard, outputs, reader, bad, split_stats,
        docs=sum(v["sequences"] for v in split_stats.values()),
        tokens=sum(v["tokens"] for v in split_stats.values()),
        **extra,
    )  # fmt: skip


def _write_packs(path: Path, items: list[tuple[Any, Any]], packs: list[list[int]]) -> dict[str, Any]:
    """One Parquet row per pack (``packed_format``), written atomically with its hash."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nemotron.data_prep.packed_format import write_packs

    sink = pa.BufferOutputStream()
    pq.write_table(write_packs(items, packs), sink, compression="zstd")
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
    conversations = sum(r["stats"]["conversations"] for r in receipts)
    total_slots = sum(v["packs"] for v in splits.values()) * size
    return {
        "kind": "sft-data",
        "format": "packed-parquet",
        "columns": list(COLUMNS),
        "loss_mask_alignment": ALIGNMENT,  # loss_mask[j] gates label j (= token j+1), as Megatron-Bridge reads it
        "eod_id": s["eod_id"],
        "pack_size": size,
        "pad_id": s["pad_id"],
        "padding_fraction": round(total_pad / total_slots, 6) if total_slots else 0.0,
        "packing_efficiency": round(1 - total_pad / total_slots, 6) if total_slots else 0.0,
        "truncated": sum(r["stats"]["truncated"] for r in receipts),
        "dropped_too_long": sum(r["stats"]["dropped_too_long"] for r in receipts),
        "dropped_no_target": sum(r["stats"]["dropped_no_target"] for r in receipts),
        "num_conversations": conversations,
        "num_sequences": sum(v["sequences"] for v in splits.values()),
        "template_fallbacks": sum(r["stats"]["template_fallbacks"] for r in receipts),
        "num_tokens": sum(v["tokens"] for v in splits.values()),
        "splits": splits,
        "tokenizer": tokenizer_summary(s),
        "chat_template": {k: v for k, v in s["chat_template"].items() if k != "template"},
        "files": output_hashes(receipts),
    }
