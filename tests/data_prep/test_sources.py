"""Corpus formats: every supported input gives the same token sequences as plain JSONL.

The sequences are read back with megatron-core's reader; plain JSONL itself is checked against
megatron-core's builder in test_pretrain.py, so equality here means byte-identical semantics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nemotron.data_prep.pretrain import prepare_pretrain
from nemotron.data_prep.sources import BadRows, expand_inputs, file_format, get_field, read_records
from nemotron.errors import UserError

from .conftest import TINY, pretrain_cfg, write_jsonl

ROWS = [
    {"id": i, "text": f"doc {i}: " + "Grüße, code x += 1; spaces   and\ttabs. " * (i % 5 + 1), "meta": {"lang": "en"}}
    for i in range(90)
]


def sequences(megatron_indexed: Any, out: Path) -> list[list[int]]:
    blend = json.loads((out / "blend.json").read_text())
    seqs = []
    for prefix in blend["train"][1::2]:
        ds = megatron_indexed.IndexedDataset(prefix)
        seqs.extend(ds[i].tolist() for i in range(len(ds)))
    return seqs


def run(tmp_path: Path, name: str, inputs: list[str], **data: Any) -> Path:
    out = tmp_path / f"out-{name}"
    cfg = pretrain_cfg(inputs, TINY / "tokenizer.json", data={"shard_size_mb": 0.002, **data})
    prepare_pretrain(cfg, out, progress=False)
    return out


@pytest.fixture
def plain(tmp_path: Path, megatron_indexed: Any) -> list[list[int]]:
    write_jsonl(tmp_path / "plain.jsonl", ROWS)
    seqs = sequences(megatron_indexed, run(tmp_path, "plain", [str(tmp_path / "plain.jsonl")]))
    assert len(seqs) == len(ROWS)
    return seqs


def _zst(path: Path, rows: list[dict], frames: int = 1) -> Path:
    import zstandard

    lines = [json.dumps(r) + "\n" for r in rows]
    step = -(-len(lines) // frames)
    with open(path, "wb") as fh:  # concatenated frames, as pzstd and many corpus writers produce
        for i in range(0, len(lines), step):
            fh.write(zstandard.ZstdCompressor(level=3).compress("".join(lines[i : i + step]).encode()))
    return path


def test_zstd_jsonl_matches_jsonl(tmp_path: Path, megatron_indexed: Any, plain: list[list[int]]) -> None:
    for name, frames in (("a.jsonl.zst", 1), ("b.json.zst", 3)):
        path = _zst(tmp_path / name, ROWS, frames)
        assert file_format(path) == "jsonl.zst"
        assert sequences(megatron_indexed, run(tmp_path, name, [str(path)])) == plain


def test_corrupt_zstd_is_a_user_error(tmp_path: Path) -> None:
    path = _zst(tmp_path / "c.jsonl.zst", ROWS)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot read .* as jsonl.zst"):
        list(read_records(path))


def test_parquet_streamed_by_row_group_with_nested_field(
    tmp_path: Path, megatron_indexed: Any, plain: list[list[int]]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [r["id"] for r in ROWS], "doc": [{"body": r["text"], "n": r["id"]} for r in ROWS]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=20)
    out = run(tmp_path, "parquet", [str(tmp_path / "t.parquet")], text_field="doc.body")
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["shards"]) > 1 and all(s["row_groups"] for s in plan["shards"])  # row groups, not the file
    assert sequences(megatron_indexed, out) == plain


def test_hf_datasets_saved_directory(tmp_path: Path, megatron_indexed: Any, plain: list[list[int]]) -> None:
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=3)
    files = expand_inputs([type("I", (), {"path": str(tmp_path / "saved"), "weight": None, "name": None})])[0].files
    assert [Path(f.path).suffix for f in files] == [".arrow"] * 3  # not state.json / dataset_info.json
    assert sequences(megatron_indexed, run(tmp_path, "saved", [str(tmp_path / "saved")])) == plain

    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(UserError, match="DatasetDict") as err:
        run(tmp_path, "dd", [str(tmp_path / "dd")])
    assert "dd/train" in (err.value.hint or "")


def test_text_field_by_name_or_dotted_path(tmp_path: Path, megatron_indexed: Any, plain: list[list[int]]) -> None:
    nested = [{"meta": {"content": {"text": r["text"]}}} for r in ROWS]
    write_jsonl(tmp_path / "nested.jsonl", nested)
    out = run(tmp_path, "nested", [str(tmp_path / "nested.jsonl")], text_field="meta.content.text")
    assert sequences(megatron_indexed, out) == plain
    assert get_field({"a.b": 1, "a": {"b": 2}}, "a.b") == 1  # a literal key wins
    assert get_field({"a": {"b": None}}, "a.b") is None
    missing = [{"meta": "not an object"}] + nested
    write_jsonl(tmp_path / "missing.jsonl", missing)
    manifest = prepare_pretrain(
        pretrain_cfg([str(tmp_path / "missing.jsonl")], TINY / "tokenizer.json",
                     data={"text_field": "meta.content.text", "max_bad_fraction": 0.5}),
        tmp_path / "out-missing", progress=False,
    )  # fmt: skip
    assert manifest["bad_rows"]["by_reason"] == {"missing_field": 1}

    from nemotron.data_prep.input_checks import check_data_prep_inputs

    cfg = pretrain_cfg(
        [str(tmp_path / "nested.jsonl")], TINY / "tokenizer.json", data={"text_field": "meta.content.text"}
    )
    check_data_prep_inputs("data_prep.pretrain", cfg)  # the submit-time check reads dotted fields too
    cfg["data"]["text_field"] = "meta.body"
    with pytest.raises(UserError, match="no 'meta.body' field"):
        check_data_prep_inputs("data_prep.pretrain", cfg)


def test_read_records_opens_every_format(tmp_path: Path) -> None:
    """The one reader submit-time checks use: same records from every format, bad rows counted."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = ROWS[:30]
    write_jsonl(tmp_path / "a.jsonl", rows)
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    _zst(tmp_path / "a.jsonl.zst", rows, frames=2)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=7)
    with pa.OSFile(str(tmp_path / "stream.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table, max_chunksize=8)
    with pa.OSFile(str(tmp_path / "file.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table, max_chunksize=8)
    for name in ("a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "a.parquet", "stream.arrow", "file.arrow"):
        got = [record for _, record in read_records(tmp_path / name)]
        assert got == rows, name
        first_where, first = next(read_records(tmp_path / name, fields=["meta.lang"]))
        assert get_field(first, "meta.lang") == "en" and str(tmp_path / name) in first_where

    write_jsonl(tmp_path / "bad.jsonl", ['{"text": "ok"}', "{not json", "[1, 2]"])
    bad = BadRows()
    assert [r for _, r in read_records(tmp_path / "bad.jsonl", bad=bad)] == [{"text": "ok"}]
    assert bad.counts == {"invalid_json": 1, "not_an_object": 1}
    (tmp_path / "a.csv").write_text("text\nx\n")
    with pytest.raises(UserError, match="unsupported input file"):
        list(read_records(tmp_path / "a.csv"))
