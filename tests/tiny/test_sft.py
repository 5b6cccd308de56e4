"""Tiny SFT: unpacking packed Parquet, loss only on loss_mask tokens, real fine-tuning, resume."""

from __future__ import annotations

import copy
import functools
import json
import types

import numpy as np
import pytest
import torch
from conftest import addition_chats, load_tiny_yaml, make_sft_data, render_chat
from super3.tiny import data as tiny_data
from super3.tiny import model as tiny_model
from super3.tiny import sft, training

from nemotron.errors import UserError


@pytest.fixture(autouse=True)
def _threads():
    tiny_model.set_threads()


def small_cfg(iters: int) -> dict:
    cfg = copy.deepcopy(load_tiny_yaml("sft"))
    cfg["train"].update(
        train_iters=iters, seq_length=128, global_batch_size=16, micro_batch_size=8, eval_interval=10, eval_iters=1
    )
    cfg["data"] = {"pack_size": 128}
    cfg["optimizer"].update(lr=3e-3, min_lr=3e-4, warmup_iters=3)
    cfg["checkpoint"] = {"save_interval": 1000}
    cfg["logging"] = {"log_interval": 5}
    return cfg


def test_unpack_row_applies_megatron_bridges_slicing_rule():
    """Per sequence [s, e): labels input_ids[s+1:e], gated by loss_mask[s:e-1]; EOS inputs never train."""
    ids = list(range(10, 20))
    mask = [0, 1, 0, 0, 1, 1, 0, 1, 0, 0]
    seqs = tiny_data.unpack_row(ids, mask, [0, 3, 7])
    assert [s.input_ids.tolist() for s in seqs] == [[10, 11, 12], [13, 14, 15, 16], [17, 18, 19]]
    assert [s.label_mask.tolist() for s in seqs] == [[0, 1], [0, 1, 1], [1, 0]]
    assert [s.label_mask.tolist() for s in tiny_data.unpack_row(ids, mask, [0, 3, 7], eos_id=14)][1] == [0, 0, 1]
    for bad in ([3, 7], [0, 7, 3], [0, 10]):  # Megatron-Bridge's row validation
        with pytest.raises(UserError, match="seq_start_id"):
            tiny_data.unpack_row(ids, mask, bad)
    with pytest.raises(UserError, match="loss_mask"):
        tiny_data.unpack_row(ids, mask[:-1], [0])


def test_read_sft_recovers_each_chat(tmp_path, tiny_tokenizer_file, tiny_tokenizer):
    """Every packed sequence comes back exactly as rendered, alone (no neighbour's tokens), and its
    trained labels are the assistant answer and <|im_end|> (the newline after it has EOS as input)."""
    chats = addition_chats(60, seed=4)
    art = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, chats, pack_size=64, rows_per_file=3)
    assert len(list(art.path.glob("*.parquet"))) > 1
    import pyarrow.parquet as pq

    rows = pq.read_table(sorted(art.path.glob("*.parquet"))[0]).to_pylist()
    assert any(len(r["seq_start_id"]) > 1 for r in rows)  # the fixture really packs
    seqs = tiny_data.read_sft_sequences(art.path, eos_id=tiny_tokenizer.eos_token_id)
    assert len(seqs) == len(chats)
    for seq, chat in zip(seqs, chats, strict=True):
        ids, _ = render_chat(tiny_tokenizer, chat)
        assert seq.input_ids.tolist() == ids
        text = tiny_tokenizer.decode(seq.input_ids[1:][seq.label_mask.astype(bool)])
        assert text == chat[1]["content"] + "<|im_end|>"


def test_collate_shifts_labels_and_masks_padding():
    seqs = [
        tiny_data.SftSequence(np.array([5, 6, 7, 8]), np.array([0, 1, 1])),
        tiny_data.SftSequence(np.array([9, 10]), np.array([1])),
    ]
    b = tiny_data.collate_sft(seqs, pad_id=3)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 3, 3]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert b["labels"].tolist() == [[-100, 7, 8, -100], [10, -100, -100, -100]]


def test_tiny_batches_train_the_labels_megatron_bridge_reads(tmp_path):
    """The same packed Parquet from the real data prep (shipped tiny chats and template) through the
    tiny batch builder and through Megatron-Bridge's slicing rule (``packed_format.sequences``):
    identical supervised (input, label) pairs, and they are the assistant answers + <|im_end|>."""
    from collections import Counter

    from nemotron.config.loader import load_stage_config
    from nemotron.data_prep.packed_format import read_rows, sequences
    from nemotron.data_prep.sft import prepare_sft
    from nemotron.pipeline.stages import STAGES

    stage = next(s for s in STAGES if s.name == "data_prep.sft")
    cfg = load_stage_config(stage, "tiny").data
    meta = prepare_sft(cfg, tmp_path / "sft", progress=False)
    tiny_tokenizer = tiny_model.load_tokenizer(cfg["tokenizer"]["path"])
    eos = tiny_tokenizer.eos_token_id
    mb, tiny = Counter(), Counter()
    answers = Counter()
    for rel in meta["splits"]["train"]["files"]:
        for ids, mask, starts in read_rows(tmp_path / "sft" / rel):
            for seq in sequences(ids, mask, starts, eos_id=eos):
                pairs = tuple(
                    (tuple(seq.tokens[: j + 1].tolist()), int(seq.labels[j])) for j in np.flatnonzero(seq.loss_mask)
                )
                mb[pairs] += 1
                answers[tiny_tokenizer.decode(seq.trained_labels())] += 1
    packs = tiny_data.read_sft_packs(tmp_path / "sft", eos_id=eos)
    for batch in tiny_data.chunk_by_length([s for p in packs for s in p], tiny_tokenizer.pad_token_id, 4096):
        for row_ids, row_labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
            pairs = tuple((tuple(row_ids[: j + 1]), lab) for j, lab in enumerate(row_labels) if lab != -100)
            tiny[pairs] += 1
    assert tiny == mb and sum(mb.values()) == meta["splits"]["train"]["sequences"]
    assert answers["15<|im_end|>"] >= 1  # a one-turn "What is A + B?" chat
    assert all(a.endswith("<|im_end|>") and "<|im_start|>" not in a and "user" not in a for a in answers)


def test_only_loss_mask_tokens_contribute(tmp_path, tiny_tokenizer_file, tiny_model_dir):
    """The loss equals cross-entropy over assistant targets only (checked against the full HF
    forward), and hidden states at positions whose next token is not an assistant token (or is
    padding) get exactly zero gradient."""
    model, tok = tiny_model.load_model(tiny_model_dir)
    art = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, addition_chats(8, seed=1))
    seqs = tiny_data.read_sft_sequences(art.path, eos_id=tok.eos_token_id)
    batch = tiny_data.collate_sft(seqs, tok.pad_token_id)
    captured = {}

    def keep_hidden(_module, _inp, out):
        out.retain_grad()
        captured["hidden"] = out

    handle = model.model.norm_f.register_forward_hook(keep_hidden)
    loss, n = training.token_loss_sum(model, batch)
    handle.remove()
    (loss / n).backward()
    labels = batch["labels"]
    targets = labels != -100
    n_assistant = sum(int(s.label_mask.sum()) for s in seqs)
    assert n == n_assistant == int(targets.sum()) > 0
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(logits[targets], labels[targets])
    assert (loss / n).item() == pytest.approx(expected.item(), rel=1e-5)
    grad = captured["hidden"].grad.abs().sum(-1)
    assert torch.all(grad[~targets] == 0)
    assert torch.all(grad[targets] > 0)
    # the same sequences chunked by length give the same total loss and target count
    chunks = tiny_data.chunk_by_length(seqs, tok.pad_token_id, chunk_tokens=64)
    assert len(chunks) > 1
    with torch.no_grad():
        parts = [training.token_loss_sum(model, c) for c in chunks]
    assert sum(k for _, k in parts) == n
    assert sum(float(v) for v, _ in parts) / n == pytest.approx(expected.item(), rel=1e-4)


def test_sft_masked_loss_falls_and_resumes(tmp_path, tiny_tokenizer_file, tiny_model_dir, monkeypatch, capsys):
    art = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, addition_chats(300, seed=2))
    inputs = {"model": types.SimpleNamespace(path=tiny_model_dir, metadata={}), "data": art}
    cfg = small_cfg(30)
    cfg["checkpoint"] = {"save_interval": 10}
    real_loop = training.train_loop
    monkeypatch.setattr(training, "train_loop", functools.partial(real_loop, stop_after=14))
    sft.run(cfg, inputs, tmp_path / "out")  # preempted after step 14 (checkpoint at 10)
    monkeypatch.setattr(training, "train_loop", real_loop)
    capsys.readouterr()
    meta = sft.run(cfg, inputs, tmp_path / "out")
    out = capsys.readouterr().out
    assert "at iteration 10" in out and "step 11 " not in out and "step 15 loss" in out
    assert meta["iteration"] == 30
    assert meta["masked_loss_after"] < 0.8 * meta["masked_loss_before"]
    assert meta["heldout_sequences"] > 0 and meta["train_sequences"] + meta["heldout_sequences"] == 300
    assert 0.0 <= meta["addition_accuracy"] <= 1.0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["masked_loss_after"] == meta["masked_loss_after"] and len(metrics["train_loss"]) == 30
    model, tok = tiny_model.load_model(tmp_path / "out")
    assert tok.chat_template


def test_sft_rejects_foreign_tokens_and_peft(tmp_path, tiny_tokenizer_file, tiny_model_dir):
    art = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, addition_chats(10))
    inputs = {"model": types.SimpleNamespace(path=tiny_model_dir, metadata={}), "data": art}
    cfg = small_cfg(1)
    cfg["peft"] = {"method": "lora"}
    with pytest.raises(UserError, match="full fine-tuning"):
        sft.run(cfg, inputs, tmp_path / "a")
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(
        pa.Table.from_pylist([{"input_ids": [1, 9999], "loss_mask": [1, 0], "seq_start_id": [0]}]), bad / "x.parquet"
    )
    with pytest.raises(UserError, match="token id 9999"):
        sft.run(small_cfg(1), {**inputs, "data": types.SimpleNamespace(path=bad, metadata={})}, tmp_path / "b")
    with pytest.raises(UserError, match="no Parquet"):
        sft.run(
            small_cfg(1), {**inputs, "data": types.SimpleNamespace(path=tmp_path / "a", metadata={})}, tmp_path / "c"
        )


@pytest.mark.slow
def test_tiny_configs_end_to_end(tmp_path):
    """The shipped tiny configs on the shipped assets, through the real data prep: pretrain loss
    falls, SFT masked loss falls, and the SFT model already answers some `What is A + B?` prompts
    (what GRPO needs to start from a non-zero reward). ~80 s of one core."""
    from super3.tiny import pretrain

    from nemotron.config.loader import load_stage_config
    from nemotron.data_prep.pretrain import prepare_pretrain
    from nemotron.data_prep.sft import prepare_sft
    from nemotron.pipeline.stages import STAGES

    stages = {s.name: s for s in STAGES}

    def cfg(name: str) -> dict:
        return load_stage_config(stages[name], "tiny").data

    pt_meta = prepare_pretrain(cfg("data_prep.pretrain"), tmp_path / "pt_data", progress=False)
    sft_meta = prepare_sft(cfg("data_prep.sft"), tmp_path / "sft_data", progress=False)
    pt_data = types.SimpleNamespace(path=tmp_path / "pt_data", metadata=pt_meta)
    sft_data = types.SimpleNamespace(path=tmp_path / "sft_data", metadata=sft_meta)

    pt = pretrain.run(cfg("pretrain"), {"data": pt_data}, tmp_path / "pt")
    assert pt["final_train_loss"] < 0.8 * pt["initial_train_loss"]
    assert pt["final_valid_loss"] < 0.8 * pt["initial_valid_loss"]
    model_in = types.SimpleNamespace(path=tmp_path / "pt", metadata=pt)
    out = sft.run(cfg("sft"), {"model": model_in, "data": sft_data}, tmp_path / "sft")
    assert out["masked_loss_after"] < 0.5 * out["masked_loss_before"]
    assert out["addition_accuracy"] >= 0.15
