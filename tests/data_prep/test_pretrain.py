"""Pretrain data prep: Megatron bin/idx equality with megatron-core's builder, blends, bad rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from nemotron.data_prep.indexed import optimal_dtype
from nemotron.data_prep.pretrain import prepare_pretrain
from nemotron.errors import UserError

from .conftest import (
    GPT2_TIKTOKEN,
    PROSE,
    TEKKEN_JSON,
    TINY,
    need,
    pretrain_cfg,
    read_jsonl,
    write_jsonl,
)

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def gpt2_encoding():
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(need(GPT2_TIKTOKEN)))
    return tiktoken.Encoding(
        "gpt2-ref", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )


def reference_dataset(megatron_indexed, prefix: Path, docs: list[list[int]], dtype) -> None:
    """What Megatron-LM's preprocess_data.py writes: one sequence per document via IndexedDatasetBuilder."""
    builder = megatron_indexed.IndexedDatasetBuilder(str(prefix) + ".bin", dtype=dtype)
    for ids in docs:
        builder.add_document(ids, [len(ids)])
    builder.finalize(str(prefix) + ".idx")


def blend_sequences(megatron_indexed, blend_entries: list) -> list[list[int]]:
    out = []
    for prefix in blend_entries[1::2]:
        ds = megatron_indexed.IndexedDataset(prefix)
        out.extend(ds[i].tolist() for i in range(len(ds)))
    return out


def test_dtype_rule_matches_megatron(megatron_indexed) -> None:
    for vocab in (4096, 50257, 65499, 65500, 131072):
        assert np.dtype(optimal_dtype(vocab)) == np.dtype(megatron_indexed.DType.optimal_dtype(vocab))


def test_gpt2_tiktoken_bytes_equal_megatron_builder(tmp_path: Path, megatron_indexed) -> None:
    docs = [r["text"] for r in read_jsonl(need(PROSE))]
    cfg = pretrain_cfg([str(PROSE)], GPT2_TIKTOKEN, data={"shard_size_mb": 64})
    result = prepare_pretrain(cfg, tmp_path / "out", progress=False)
    assert result["dtype"] == "uint16" and result["tokenizer"]["vocab_size"] == 50257
    assert result["num_docs"] == len(docs) and result["eod_id"] == 50256

    enc = gpt2_encoding()
    ref_docs = [enc.encode_ordinary(t) + [50256] for t in docs]
    reference_dataset(megatron_indexed, tmp_path / "ref", ref_docs, np.uint16)
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    assert len(blend["train"]) == 2 and blend["valid"] == [] and blend["test"] == []
    prefix = Path(blend["train"][1])
    # Same tokens, same index: the files are byte-identical to megatron-core's builder output.
    assert prefix.with_suffix(".bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    assert prefix.with_suffix(".idx").read_bytes() == (tmp_path / "ref.idx").read_bytes()
    ds = megatron_indexed.IndexedDataset(str(prefix))
    assert ds[0].dtype == np.uint16 and len(ds) == len(docs)
    assert [ds[i].tolist() for i in range(len(ds))] == ref_docs
    assert result["num_tokens"] == sum(map(len, ref_docs))


def test_gpt2_many_shards_same_sequences(tmp_path: Path, megatron_indexed) -> None:
    docs = [r["text"] for r in read_jsonl(need(PROSE))]
    cfg = pretrain_cfg([str(PROSE)], GPT2_TIKTOKEN, data={"shard_size_mb": 0.2})
    result = prepare_pretrain(cfg, tmp_path / "out", progress=False)
    assert result["num_shards"] >= 8
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    enc = gpt2_encoding()
    assert blend_sequences(megatron_indexed, blend["train"]) == [enc.encode_ordinary(t) + [50256] for t in docs]
    assert sum(blend["train"][0::2]) == pytest.approx(1.0)


def test_tekken_hf_int32_equal_megatron_builder(tmp_path: Path, megatron_indexed) -> None:
    from tokenizers import Tokenizer

    rows = read_jsonl(need(PROSE))[:25]
    src = write_jsonl(tmp_path / "docs.jsonl", rows)
    cfg = pretrain_cfg([str(src)], need(TEKKEN_JSON), data={"shard_size_mb": 0.1})
    result = prepare_pretrain(cfg, tmp_path / "out", progress=False)
    assert result["dtype"] == "int32" and result["tokenizer"]["vocab_size"] == 131072
    assert result["eod_id"] == 2  # </s>, from tokenizer_config.json's eos_token
    assert result["tokenizer"]["encoder"] == "rank-table"  # the fast path made these bytes

    tok = Tokenizer.from_file(str(TEKKEN_JSON))
    ref_docs = [tok.encode(r["text"]).ids + [2] for r in rows]
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    assert blend_sequences(megatron_indexed, blend["train"]) == ref_docs
    if result["num_shards"] == 1:
        return
    # Merged into one dataset with megatron-core's own add_index, the shards equal the reference bytes.
    merged = megatron_indexed.IndexedDatasetBuilder(str(tmp_path / "merged.bin"), dtype=np.int32)
    for prefix in blend["train"][1::2]:
        merged.add_index(prefix)
    merged.finalize(str(tmp_path / "merged.idx"))
    reference_dataset(megatron_indexed, tmp_path / "ref", ref_docs, np.int32)
    assert (tmp_path / "merged.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    assert (tmp_path / "merged.idx").read_bytes() == (tmp_path / "ref.idx").read_bytes()


def _docs(n: int, tag: str) -> list[dict]:
    return [{"text": f"{tag} document number {i}. " + "Some words to tokenize here. " * (i % 7 + 1)} for i in range(n)]


def test_blend_weights_globs_and_splits(tmp_path: Path, megatron_indexed) -> None:
    write_jsonl(tmp_path / "web" / "part-0.jsonl", _docs(300, "web0"))
    write_jsonl(tmp_path / "web" / "part-1.jsonl", _docs(300, "web1"))
    write_jsonl(tmp_path / "code.jsonl", _docs(200, "code"))
    inputs = [
        {"path": str(tmp_path / "web" / "*.jsonl"), "weight": 0.25},
        {"path": str(tmp_path / "code.jsonl"), "weight": 0.75},
    ]
    cfg = pretrain_cfg(
        inputs, TINY / "tokenizer.json", data={"shard_size_mb": 0.01, "valid_fraction": 0.1, "test_fraction": 0.05}
    )
    result = prepare_pretrain(cfg, tmp_path / "out", progress=False)
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    assert set(blend) == {"train", "valid", "test"}
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    dataset_of = {s["key"]: s["dataset"] for s in plan["shards"]}
    assert [d["name"] for d in result["datasets"]] == ["web", "code"]
    assert len(result["datasets"][0]["files"]) == 2  # the glob matched both parts
    for split, entries in blend.items():
        assert entries, split
        weights, prefixes = entries[0::2], entries[1::2]
        assert all(isinstance(w, float) for w in weights) and all(isinstance(p, str) for p in prefixes)
        by_ds: dict[str, float] = {}
        for w, p in zip(weights, prefixes, strict=True):
            assert megatron_indexed.IndexedDataset.exists(p)
            by_ds[dataset_of[Path(p).parent.name]] = by_ds.get(dataset_of[Path(p).parent.name], 0) + w
        assert by_ds["web"] == pytest.approx(0.25) and by_ds["code"] == pytest.approx(0.75)
    docs = {s: result["splits"][s]["docs"] for s in ("train", "valid", "test")}
    assert sum(docs.values()) == 800
    assert 40 <= docs["valid"] <= 130 and 15 <= docs["test"] <= 75  # ~10% / ~5%, by content hash
    sequences = {s: len(blend_sequences(megatron_indexed, blend[s])) for s in blend}
    assert sequences == docs


def test_natural_weights_follow_tokens(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _docs(100, "a"))
    write_jsonl(tmp_path / "b.jsonl", _docs(300, "b"))
    cfg = pretrain_cfg([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], TINY / "tokenizer.json")
    result = prepare_pretrain(cfg, tmp_path / "out", progress=False)
    blend = json.loads((tmp_path / "out" / "blend.json").read_text())
    tokens = {d["name"]: d["tokens"] for d in result["dataset_stats"]}
    weights = blend["train"][0::2]
    assert weights[0] == pytest.approx(tokens["a"] / (tokens["a"] + tokens["b"]))


def test_parquet_and_gzip_inputs_match_jsonl(tmp_path: Path, megatron_indexed) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _docs(120, "fmt")
    write_jsonl(tmp_path / "plain.jsonl", rows)
    with gzip.open(tmp_path / "packed.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    pq.write_table(pa.table({"text": [r["text"] for r in rows]}), tmp_path / "table.parquet", row_group_size=25)
    seqs = []
    for name in ("plain.jsonl", "packed.jsonl.gz", "table.parquet"):
        cfg = pretrain_cfg([str(tmp_path / name)], TINY / "tokenizer.json", data={"shard_size_mb": 0.002})
        prepare_pretrain(cfg, tmp_path / f"out-{name}", progress=False)
        blend = json.loads((tmp_path / f"out-{name}" / "blend.json").read_text())
        seqs.append(blend_sequences(megatron_indexed, blend["train"]))
    assert len(seqs[0]) == 120 and seqs[0] == seqs[1] == seqs[2]


def test_bad_rows_counted_and_threshold(tmp_path: Path) -> None:
    good = _docs(40, "good")
    lines = [json.dumps(r) for r in good[:20]]
    lines += ['{"text": "unterminated', json.dumps({"body": "no text field"}), json.dumps({"text": "   "})]
    lines += [json.dumps({"text": 42}), "", json.dumps([1, 2])]
    lines += [json.dumps(r) for r in good[20:]]
    src = write_jsonl(tmp_path / "mixed.jsonl", lines)
    cfg = pretrain_cfg([str(src)], TINY / "tokenizer.json", data={"max_bad_fraction": 0.2})
    result = prepare_pretrain(cfg, tmp_path / "ok", progress=False)
    assert result["num_docs"] == 40
    assert result["bad_rows"]["rows"] == 45  # the blank line is not a row
    assert result["bad_rows"]["by_reason"] == {
        "empty_text": 1,
        "invalid_json": 1,
        "missing_field": 1,
        "not_a_string": 1,
        "not_an_object": 1,
    }
    strict = pretrain_cfg([str(src)], TINY / "tokenizer.json", data={"max_bad_fraction": 0.1})
    with pytest.raises(UserError, match=r"5 of 45 input rows .* above data.max_bad_fraction=0.1") as err:
        prepare_pretrain(strict, tmp_path / "strict", progress=False)
    assert "mixed.jsonl@" in err.value.message and err.value.hint
    assert not (tmp_path / "strict" / "blend.json").exists()
    # Raising the threshold reuses every finished shard (thresholds are not part of the plan).
    relaxed = pretrain_cfg([str(src)], TINY / "tokenizer.json", data={"max_bad_fraction": 0.5})
    again = prepare_pretrain(relaxed, tmp_path / "strict", progress=False)
    assert again["run"]["shards_run"] == 0 and again["num_docs"] == 40


def test_wrong_field_fails_fast(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", [{"content": f"doc {i}"} for i in range(50)])
    cfg = pretrain_cfg([str(src)], TINY / "tokenizer.json", data={"max_bad_fraction": 0.01})
    with pytest.raises(UserError, match="every one of 50 rows .*missing_field=50"):
        prepare_pretrain(cfg, tmp_path / "out", progress=False)


def test_user_errors_for_missing_inputs_and_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no input files match"):
        prepare_pretrain(pretrain_cfg([str(tmp_path / "nope/*.jsonl")], TINY / "tokenizer.json"), tmp_path / "o")
    src = write_jsonl(tmp_path / "a.jsonl", _docs(3, "a"))
    with pytest.raises(UserError, match="tokenizer file not found"):
        prepare_pretrain(pretrain_cfg([str(src)], tmp_path / "missing.json"), tmp_path / "o")
    with pytest.raises(UserError, match="both include"):
        prepare_pretrain(pretrain_cfg([str(src), str(tmp_path / "*.jsonl")], TINY / "tokenizer.json"), tmp_path / "o")
    with pytest.raises(UserError, match="no end-of-document token"):
        cfg = pretrain_cfg([str(src)], TINY / "tokenizer.json")
        cfg["tokenizer"]["eod"] = "<|nope|>"
        prepare_pretrain(cfg, tmp_path / "o")
