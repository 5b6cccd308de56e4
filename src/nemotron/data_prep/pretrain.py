"""``data prep pretrain``: raw text -> Megatron ``.bin/.idx`` shards + ``blend.json``.

Token semantics follow Megatron-LM's preprocess_data.py (one sequence per document, EOD appended,
uint16 when the vocabulary is < 65500 else int32), so the shards are interchangeable with its
output. Each shard writes one indexed dataset per split (``shards/<key>/{train,valid,test}``);
``blend.json`` lists every non-empty one as ``[weight, prefix, ...]`` per split, where a dataset's
weight (``data.inputs[].weight``, or its token count when no weights are given) is shared among its
shards by their token counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron.data_prep.common import tokenizer_summary, validate
from nemotron.data_prep.indexed import IndexedWriter, optimal_dtype
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
from nemotron.data_prep.sources import MISSING, BadRows, ChunkReader, get_field
from nemotron.data_prep.splits import make_assigner, split_names
from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec

STAGE = "pretrain"
BLEND = "blend.json"


def prepare_pretrain(
    cfg: Any,
    output_dir: str | Path,
    progress: bool = True,
    *,
    rank: int | None = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Tokenize ``cfg.data.inputs`` into ``output_dir``; returns the artifact metadata.

    ``cfg`` is a validated ``DataPrepPretrainConfig`` (a plain dict is validated here).
    ``rank``/``world_size`` default to SLURM_PROCID/SLURM_NTASKS. The returned dict is the manifest
    (blend path, docs/tokens per split, bad rows, tokenizer path/vocab/hash, dtype, plan hash) plus
    ``finalized`` (False while other ranks still work), ``publish`` and this run's ``run`` stats.
    """
    from nemotron.config.schemas.data_prep import DataPrepPretrainConfig

    cfg = validate(cfg, DataPrepPretrainConfig)
    out = prepare_output_dir(output_dir)

    spec = resolve_spec(cfg.tokenizer)
    tok = get_tokenizer(spec)
    dtype = optimal_dtype(max(tok.vocab_size, tok.eod_id + 1))
    fractions = {"valid": cfg.data.valid_fraction, "test": cfg.data.test_fraction}
    settings = {
        "text_field": cfg.data.text_field,
        "fractions": fractions,
        "seed": cfg.seed,
        "tokenizer": spec.describe(),
        "eod_id": tok.eod_id,
        "vocab_size": tok.vocab_size,
        "dtype": dtype,
        "format_version": 1,
    }
    return run_stage(
        STAGE, cfg, out, settings, process_shard, _finalize,
        tokenizer=spec, rank=rank, world_size=world_size, progress=progress,
    )  # fmt: skip


def process_shard(job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    """Tokenize one shard into one indexed dataset per split. Runs in a worker process."""
    import numpy as np

    assert job.tokenizer is not None
    tok = get_tokenizer(job.tokenizer)
    settings = job.settings
    field = settings["text_field"]
    eod = np.array([settings["eod_id"]], dtype=np.uint32)
    dtype = np.dtype(settings["dtype"])
    assign = make_assigner(settings["seed"], settings["fractions"])
    splits = split_names(settings["fractions"])
    single_split = len(splits) == 1
    base = Path(job.output_dir) / SHARDS / shard.key
    writers = {name: IndexedWriter(base / name, settings["dtype"]) for name in splits}
    bad = BadRows()
    reader = ChunkReader(shard.piece, [field], bad)
    try:
        for records, nbytes in reader.chunks():
            texts: list[str] = []
            for where, record in records:
                text = get_field(record, field)
                if text is MISSING:
                    bad.add("missing_field", where)
                elif text is None:
                    bad.add("null_text", where)
                elif not isinstance(text, str):
                    bad.add("not_a_string", where)
                elif not text.strip():
                    bad.add("empty_text", where)
                else:
                    texts.append(text)
            token_lists = tok.encode_docs(texts)
            by_split: dict[str, tuple[list[Any], list[int]]] = {name: ([], []) for name in splits}
            docs = tokens = 0
            for text, ids in zip(texts, token_lists, strict=True):
                if len(ids) == 0:
                    bad.add("no_tokens", shard.piece.file.path)
                    continue
                parts, lengths = by_split["train" if single_split else assign(text)]
                parts.append(ids)
                parts.append(eod)
                lengths.append(len(ids) + 1)
                docs += 1
                tokens += len(ids) + 1
            for name, (parts, lengths) in by_split.items():
                if lengths:
                    flat = np.concatenate(parts).astype(dtype, copy=False)
                    writers[name].add_documents(flat, lengths)
            counters.add(nbytes, docs, tokens)
        outputs: dict[str, Any] = {}
        split_stats = {}
        for name, writer in writers.items():
            for filename, info in writer.close().items():
                outputs[f"{SHARDS}/{shard.key}/{filename}"] = info
            split_stats[name] = {"docs": writer.num_docs, "tokens": writer.num_tokens}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return shard_result(
        job, shard, outputs, reader, bad, split_stats,
        docs=sum(s["docs"] for s in split_stats.values()),
        tokens=sum(s["tokens"] for s in split_stats.values()),
    )  # fmt: skip


def _finalize(plan: Plan, receipts: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Write blend.json from the receipts; return the manifest body."""
    from nemotron.data_prep.atomic import write_json_atomic

    settings = plan.settings
    splits = split_names(settings["fractions"])
    natural = all(d.weight is None for d in plan.datasets)
    blend: dict[str, list[Any]] = {"train": [], "valid": [], "test": []}
    per_split: dict[str, dict[str, int]] = {}
    datasets_stats = []
    for name in splits:
        ds_tokens = [0] * len(plan.datasets)
        for shard, receipt in zip(plan.shards, receipts, strict=True):
            ds_tokens[shard.dataset] += receipt["stats"]["splits"][name]["tokens"]
        weights = [float(t) if natural else float(d.weight or 0) for d, t in zip(plan.datasets, ds_tokens, strict=True)]
        active = sum(w for w, t in zip(weights, ds_tokens, strict=True) if t > 0)
        entries: list[Any] = []
        for shard, receipt in zip(plan.shards, receipts, strict=True):
            tokens = receipt["stats"]["splits"][name]["tokens"]
            if tokens == 0 or active == 0:
                continue
            share = weights[shard.dataset] / active * tokens / ds_tokens[shard.dataset]
            entries += [round(share, 12), str(out / SHARDS / shard.key / name)]
        blend[name] = entries
        per_split[name] = {
            "docs": sum(r["stats"]["splits"][name]["docs"] for r in receipts),
            "tokens": sum(ds_tokens),
            "prefixes": len(entries) // 2,
        }
    for ds in plan.datasets:
        mine = [r for s, r in zip(plan.shards, receipts, strict=True) if s.dataset == ds.index]
        datasets_stats.append(
            {
                "name": ds.name,
                "docs": sum(r["stats"]["docs"] for r in mine),
                "tokens": sum(r["stats"]["tokens"] for r in mine),
            }
        )
    write_json_atomic(out / BLEND, blend)
    return {
        "kind": "pretrain-data",
        "format": "megatron-indexed",
        "blend": BLEND,
        "blend_path": str(out / BLEND),
        "dtype": settings["dtype"],
        "eod_id": settings["eod_id"],
        "tokenizer": tokenizer_summary(settings),
        "num_docs": sum(r["stats"]["docs"] for r in receipts),
        "num_tokens": sum(r["stats"]["tokens"] for r in receipts),
        "splits": per_split,
        "dataset_stats": datasets_stats,
        "files": output_hashes(receipts),
    }
