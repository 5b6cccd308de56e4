"""The tiktoken fast path for HF tokenizer.json files gives HF ``tokenizers``' ids, or is refused.

Reference: HF ``tokenizers`` itself, on a large mixed corpus (prose, the repository's own source
code, chats, maths, every script's characters, whitespace runs, added-token text). Refusal: files
changed in one way each that tiktoken cannot reproduce must fall back to HF and say why.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nemotron.data_prep import tokenizer as tokmod
from nemotron.data_prep.rank_table import NotEquivalent, build_rank_table
from nemotron.data_prep.tokenizer import get_tokenizer, resolve_spec
from nemotron.data_prep.tokenizer_probe import probe_texts
from nemotron.paths import REPO_ROOT

from .conftest import FAQ, GSM, PROSE, SHARED, TEKKEN_JSON, need, read_jsonl

GPT2_JSON = SHARED / "tokenizers" / "gpt2" / "tokenizer.json"


def section(path: Path, add_special_tokens: bool = True) -> Any:
    return type(
        "T",
        (),
        {"path": str(path), "kind": "auto", "eod": None, "pattern": None, "special_tokens": [],
         "add_special_tokens": add_special_tokens},
    )  # fmt: skip


def mixed_corpus(specials: list[str]) -> list[str]:
    """~3 MB of text of every kind the fast path must reproduce."""
    texts = [row["text"] for row in read_jsonl(need(PROSE))]
    code = sorted((REPO_ROOT / "src" / "nemotron").rglob("*.py"))
    texts += [p.read_text() for p in code[:150]]
    texts += [json.dumps(row, ensure_ascii=False) for row in read_jsonl(need(FAQ))[:300]]
    texts += [json.dumps(row) for row in read_jsonl(need(GSM))[:300]]
    texts += probe_texts(specials, scale=6)
    return texts


def hf_reference(path: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


@pytest.mark.parametrize("path", [GPT2_JSON, TEKKEN_JSON], ids=["gpt2", "tekken"])
def test_fast_path_ids_and_offsets_equal_hf(path: Path) -> None:
    spec = resolve_spec(section(need(path)))
    assert spec.encoder == "rank-table", spec.encoder_note
    tok = get_tokenizer(spec)
    hf = hf_reference(path)
    specials = list(hf.get_added_tokens_decoder().values())
    texts = mixed_corpus([t.content for t in specials])
    assert sum(map(len, texts)) > 2_000_000
    reference = hf.encode_batch(texts, add_special_tokens=True)
    ours = tok.encode_docs(texts)
    for i, (mine, ref) in enumerate(zip(ours, reference, strict=True)):
        assert mine.tolist() == ref.ids, f"text {i} differs: {texts[i][:80]!r}"
    for i in range(0, len(texts), 7):  # SFT's path: ids with each token's start character
        ids, starts = tok.encode_with_offsets(texts[i])
        assert ids == reference[i].ids
        assert starts == [a for a, _ in reference[i].offsets], f"offsets of text {i}"
    assert tok.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    for name in ("<|endoftext|>", "</s>", "<s>", "Ġthe", "[INST]", "no-such-token"):
        assert tok.token_id(name) == hf.token_to_id(name)


def test_worker_built_encoder_equals_verified_one(tmp_path: Path) -> None:
    """Workers get the decided spec and skip the checks; they must build the same encoder."""
    spec = resolve_spec(section(need(TEKKEN_JSON)))
    tokmod._CACHE.clear()
    worker = tokmod.HfTokenizer(spec)
    assert worker._tok is None and worker._fast is not None  # no HF load in a worker
    texts = probe_texts(["</s>", "[INST]"])
    ref = hf_reference(TEKKEN_JSON).encode_batch(texts)
    assert [a.tolist() for a in worker.encode_docs(texts)] == [r.ids for r in ref]
    assert worker.eod_id == 2 and worker.vocab_size == 131072
    table = tokmod._verdict_path(spec).with_suffix(".table")
    assert table.is_file()  # what the worker read instead of the 17 MB JSON
    table.write_bytes(table.read_bytes()[:1000])  # a damaged table: rebuilt from the JSON, same ids
    tokmod._CACHE.clear()
    rebuilt = tokmod.HfTokenizer(spec)
    assert [a.tolist() for a in rebuilt.encode_docs(texts)] == [r.ids for r in ref]


def with_changes(tmp_path: Path, change: Any, source: Path = GPT2_JSON) -> Path:
    doc = json.loads(need(source).read_text())
    change(doc)
    out = tmp_path / "tokenizer.json"
    out.write_text(json.dumps(doc))
    return out


def template_bos(doc: dict[str, Any]) -> None:
    doc["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                ],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {
                    "<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256], "tokens": ["<|endoftext|>"]}
                },
            },
        ],
    }


def classic_gpt2(doc: dict[str, Any]) -> None:
    """The hub's gpt2 layout: ByteLevel(use_regex) alone, no ignore_merges (self-check path)."""
    doc["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    doc["model"]["ignore_merges"] = False


@pytest.mark.parametrize("change", [template_bos, classic_gpt2], ids=["bos-template", "classic-gpt2"])
def test_fast_path_for_other_accepted_shapes(tmp_path: Path, change: Any) -> None:
    path = with_changes(tmp_path, change)
    for add in (True, False):
        tokmod._CACHE.clear()
        spec = resolve_spec(section(path, add_special_tokens=add))
        assert spec.encoder == "rank-table", spec.encoder_note
        texts = mixed_corpus(["<|endoftext|>"])[::5]
        reference = hf_reference(path).encode_batch(texts, add_special_tokens=add)
        ours = get_tokenizer(spec).encode_docs(texts)
        assert [a.tolist() for a in ours] == [r.ids for r in reference]
        if change is template_bos:
            assert ours[0][0] == 50256 if add else ours[0][0] != 50256


def _swap_two_merges(doc: dict[str, Any]) -> None:
    merges = doc["model"]["merges"]
    merges[10], merges[5000] = merges[5000], merges[10]


def _drop_a_split(doc: dict[str, Any]) -> None:
    merges = doc["model"]["merges"]
    made = [m[0] + m[1] for m in merges]
    index = next(i for i, t in enumerate(made) if made.count(t) > 1)
    del merges[index]


REFUSALS = {
    "normalizer": (lambda d: d.__setitem__("normalizer", {"type": "NFC"}), "normalizer NFC"),
    "split-behaviour": (
        lambda d: d["pre_tokenizer"]["pretokenizers"][0].__setitem__("behavior", "MergedWithPrevious"),
        "Split behavior",
    ),
    "prefix-space": (
        lambda d: d["pre_tokenizer"]["pretokenizers"][1].__setitem__("add_prefix_space", True),
        "add_prefix_space",
    ),
    "byte-fallback": (lambda d: d["model"].__setitem__("byte_fallback", True), "byte_fallback"),
    "dropout": (lambda d: d["model"].__setitem__("dropout", 0.1), "dropout"),
    "merge-order": (_swap_two_merges, "priority != id"),
    "missing-split": (_drop_a_split, "two-token splits"),
    "lstrip-token": (lambda d: d["added_tokens"][0].__setitem__("lstrip", True), "lstrip=true"),
    "prefix-token": (
        lambda d: d["added_tokens"].append({**d["added_tokens"][0], "id": 50257, "content": "<|endoftext|>x"}),
        "is a prefix of",
    ),
    "bert-post": (lambda d: d.__setitem__("post_processor", {"type": "BertProcessing"}), "BertProcessing"),
    "metaspace": (lambda d: d.__setitem__("pre_tokenizer", {"type": "Metaspace"}), "not [regex Split, ByteLevel]"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_structural_check_refuses(name: str) -> None:
    change, reason = REFUSALS[name]
    doc = json.loads(need(GPT2_JSON).read_text())
    build_rank_table(copy.deepcopy(doc))  # the unchanged file passes
    change(doc)
    with pytest.raises(NotEquivalent, match=reason.replace("[", r"\[").replace("]", r"\]")):
        build_rank_table(doc)


def test_refused_file_uses_hf_and_the_manifest_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nemotron.data_prep.pretrain import prepare_pretrain

    from .conftest import pretrain_cfg, write_jsonl

    path = with_changes(tmp_path, REFUSALS["merge-order"][0])
    corpus = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in probe_texts(["<|endoftext|>"]) if t.strip()])
    result = prepare_pretrain(pretrain_cfg([str(corpus)], path), tmp_path / "out", progress=True)
    assert "HF tokenizers (fast path refused: merge" in capsys.readouterr().err  # the job log says it
    assert result["tokenizer"]["encoder"] == "hf"
    assert "priority != id" in result["tokenizer"]["encoder_note"]
    receipt = json.loads(next((tmp_path / "out" / "receipts").glob("*.json")).read_text())
    assert receipt["encoder"]["name"] == "hf"


def test_probe_mismatch_refuses_fast_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If tiktoken ever disagrees with HF on the probe (e.g. a regex-engine difference), HF is used."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # this refusal must not be remembered
    path = with_changes(tmp_path, lambda d: None)
    original = tokmod.RankTableEncoder.encode_docs

    def off_by_one(self: Any, texts: list[str], add: bool) -> list[Any]:
        arrays = original(self, texts, add)
        arrays[-1] = arrays[-1] + 1
        return arrays

    monkeypatch.setattr(tokmod.RankTableEncoder, "encode_docs", off_by_one)
    spec = resolve_spec(section(path))
    assert spec.encoder == "hf" and "ids differ from HF" in spec.encoder_note
    assert isinstance(get_tokenizer(spec).encode_docs(["hello"])[0], list)  # HF's ids


def test_verdict_is_cached_per_file_and_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = with_changes(tmp_path, lambda d: None)
    spec = resolve_spec(section(path))
    assert spec.encoder == "rank-table"
    assert tokmod._cached_verdict(spec) == ""
    tokmod._CACHE.clear()
    monkeypatch.setattr(tokmod.HfTokenizer, "_check_probe", lambda *a: pytest.fail("checked again"))
    assert resolve_spec(section(path)).encoder == "rank-table"
