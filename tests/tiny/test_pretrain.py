"""Tiny pretraining: bin/idx reading, blend sampling, LR schedules, real training, resume."""

from __future__ import annotations

import copy
import functools
import json
import re
import types

import numpy as np
import pytest
import torch
from conftest import load_tiny_yaml, make_pretrain_data, prose_docs, write_indexed
from super3.tiny import data as tiny_data
from super3.tiny import model as tiny_model
from super3.tiny import pretrain, training

from nemotron.errors import UserError

LOG_LINE = re.compile(r"^step (\d+) loss (\d+\.\d+) lr (\S+) tok/s (\d+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _threads():
    tiny_model.set_threads()


def small_cfg(iters: int, **train) -> dict:
    cfg = copy.deepcopy(load_tiny_yaml("pretrain"))
    cfg["train"].update(
        train_iters=iters, seq_length=64, global_batch_size=8, micro_batch_size=4, eval_interval=10, eval_iters=2
    )
    cfg["train"].update(train)
    cfg["optimizer"].update(warmup_iters=3)
    cfg["checkpoint"] = {"save_interval": 1000}
    cfg["logging"] = {"log_interval": 5}
    return cfg


@pytest.fixture
def pretrain_data(tmp_path, tiny_tokenizer_file):
    return make_pretrain_data(tmp_path / "data", tiny_tokenizer_file, prose_docs(200, seed=2), prose_docs(20, seed=3))


def test_idx_reader_matches_megatron_core(tmp_path):
    """Our numpy reader agrees with megatron-core's IndexedDataset (the independent reader)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    rng = np.random.default_rng(0)
    docs = [list(rng.integers(0, 3000, size=int(n))) + [0] for n in rng.integers(1, 50, size=40)]
    for dtype in (np.uint16, np.int32):
        prefix = tmp_path / f"d_{np.dtype(dtype).name}"
        write_indexed(prefix, docs, dtype=dtype)
        ours = tiny_data.read_indexed(prefix)
        theirs = IndexedDataset(str(prefix))
        assert len(theirs) == len(docs) == len(ours.lengths)
        assert ours.tokens.dtype == np.dtype(dtype)
        for i in range(len(docs)):
            assert np.array_equal(ours.document(i), theirs[i])
        assert len(ours) == sum(len(d) for d in docs)


def test_idx_reader_rejects_garbage(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"NOTMAGIC" * 8)
    (tmp_path / "x.bin").write_bytes(b"\0" * 8)
    with pytest.raises(UserError, match="bad magic"):
        tiny_data.read_indexed(tmp_path / "x")
    with pytest.raises(UserError, match="missing"):
        tiny_data.read_indexed(tmp_path / "nothing")


def test_blend_weights_and_deterministic_windows(tmp_path):
    """Windows follow the blend weights, resolve relative prefixes, and repeat for the same key."""
    write_indexed(tmp_path / "a", [list(range(10, 20)) * 30])  # tokens 10..19
    write_indexed(tmp_path / "b", [list(range(100, 110)) * 30])  # tokens 100..109
    (tmp_path / "blend.json").write_text(json.dumps({"train": [3, "a", 1, str(tmp_path / "b")]}))
    blend = tiny_data.read_blend(tmp_path)
    assert [round(w, 3) for w, _ in blend["train"]] == [0.75, 0.25]
    assert blend["train"][0][1] == tmp_path / "a"
    sampler = tiny_data.WindowSampler(blend["train"], seq_length=16, seed=5)
    w = sampler.windows(0, 2000)
    assert w.shape == (2000, 17)
    from_a = (w < 50).all(dim=1).float().mean().item()
    assert abs(from_a - 0.75) < 0.04
    assert torch.equal(sampler.windows(7, 8), sampler.windows(7, 8))
    assert not torch.equal(sampler.windows(7, 8), sampler.windows(8, 8))
    b = sampler.batch(3, 4)
    assert torch.equal(b["input_ids"][:, 1:], b["labels"][:, :-1])  # labels are the next tokens


def test_short_stream_is_tiled(tmp_path):
    write_indexed(tmp_path / "s", [[1, 2, 3, 0]])
    sampler = tiny_data.WindowSampler([(1.0, tmp_path / "s")], seq_length=10, seed=0)
    assert sampler.windows(0, 2).shape == (2, 11)


def test_lr_schedules():
    """Megatron's scheduler: warmup, then cosine/linear to min_lr, or WSD hold + anneal styles."""
    opt = {"lr": 1.0, "min_lr": 0.1, "warmup_iters": 10, "lr_schedule": "cosine"}
    assert training.lr_at(0, opt, 110) == pytest.approx(0.1)
    assert training.lr_at(9, opt, 110) == pytest.approx(1.0)
    assert training.lr_at(60, opt, 110) == pytest.approx(0.55)
    assert training.lr_at(110, opt, 110) == pytest.approx(0.1)
    assert training.lr_at(60, {**opt, "lr_schedule": "linear"}, 110) == pytest.approx(0.55)
    assert training.lr_at(50, {**opt, "lr_schedule": "constant"}, 110) == 1.0
    assert training.lr_at(60, {**opt, "decay_iters": 60}, 110) == pytest.approx(0.1)  # span ends early
    wsd = {**opt, "lr_schedule": "wsd", "decay_iters_fraction": 0.2}  # anneal over the last 22 iters
    assert training.lr_at(88, wsd, 110) == pytest.approx(1.0)
    styles = {"linear": 0.5, "cosine": 0.5, "minus_sqrt": 1 - 0.5**0.5, "exponential": 2 * 0.5**0.5 - 1}
    for style, coeff in styles.items():
        assert training.lr_at(99, {**wsd, "wsd_decay_style": style}, 110) == pytest.approx(0.1 + 0.9 * coeff)
    assert training.lr_at(109, {**wsd, "wsd_decay_iters": 10}, 110) == pytest.approx(0.1 + 0.9 * (1 - 0.9**0.5))
    with pytest.raises(UserError):
        training.lr_at(20, {**opt, "lr_schedule": "bogus"}, 110)


def test_pretrain_loss_falls_and_outputs(tmp_path, pretrain_data, capsys):
    cfg = small_cfg(40)
    meta = pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "out")
    out = capsys.readouterr().out
    steps = [int(m.group(1)) for m in LOG_LINE.finditer(out)]
    assert steps == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert meta["iteration"] == 40
    assert meta["final_train_loss"] < 0.8 * meta["initial_train_loss"]
    assert meta["final_valid_loss"] < 0.8 * meta["initial_valid_loss"]
    assert meta["layers"] == {"mamba": 3, "moe": 3, "attention": 1, "mlp": 0}
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["train_loss"]) == 40 and [s for s, _ in metrics["valid_loss"]] == [0, 10, 20, 30, 40]
    model, tok = tiny_model.load_model(tmp_path / "out")  # artifact dir -> hf/
    assert tok.chat_template and model.config.hybrid_override_pattern == "MEM*EME"
    # the saved model reproduces the reported validation loss
    vs = tiny_data.WindowSampler(tiny_data.read_blend(pretrain_data.path)["valid"], 64, cfg.get("seed", 1234))
    valid = [vs.batch(i, 4, stream=1) for i in range(2)]
    assert training.evaluate(model, valid) == pytest.approx(metrics["valid_loss"][-1][1], rel=1e-4)


def test_resume_continues_from_checkpoint(tmp_path, pretrain_data, monkeypatch, capsys):
    """A preempted run resumes at its last checkpoint and ends with the same weights as an
    uninterrupted run (batches are a function of (seed, step); optimizer state is restored)."""
    cfg = small_cfg(12, eval_interval=100)
    cfg["checkpoint"] = {"save_interval": 4}
    full = pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "full")

    real_loop = training.train_loop
    monkeypatch.setattr(training, "train_loop", functools.partial(real_loop, stop_after=6))
    pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "job")  # "preempted" after step 6
    ckpts = sorted(p.name for p in (tmp_path / "job" / "checkpoints").iterdir() if p.name.startswith("iter_"))
    assert ckpts == ["iter_0000004"]
    monkeypatch.setattr(training, "train_loop", real_loop)
    capsys.readouterr()
    resumed = pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "job")  # the requeued job
    out = capsys.readouterr().out
    assert "at iteration 4" in out
    assert [int(m.group(1)) for m in LOG_LINE.finditer(out)] == [5, 10, 12]
    assert resumed["iteration"] == 12
    a, _ = tiny_model.load_model(tmp_path / "full")
    b, _ = tiny_model.load_model(tmp_path / "job")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), name
    assert resumed["final_train_loss"] == pytest.approx(full["final_train_loss"], abs=1e-4)
    # running again after completion does no more steps
    capsys.readouterr()
    again = pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "job")
    assert again["iteration"] == 12 and not LOG_LINE.search(capsys.readouterr().out)


def test_continue_from_model_input(tmp_path, pretrain_data, tiny_model_dir):
    meta = pretrain.run(
        small_cfg(2), {"data": pretrain_data, "model": types.SimpleNamespace(path=tiny_model_dir)}, tmp_path / "o"
    )
    assert meta["init"] == "continued" and meta["iteration"] == 2


def test_user_errors(tmp_path, pretrain_data):
    with pytest.raises(UserError, match="multiple"):
        pretrain.run(small_cfg(2, global_batch_size=6, micro_batch_size=4), {"data": pretrain_data}, tmp_path / "a")
    with pytest.raises(UserError, match="blend.json"):
        pretrain.run(small_cfg(2), {"data": types.SimpleNamespace(path=tmp_path, metadata={})}, tmp_path / "b")
    section = {**small_cfg(2)["model"]}
    big = tiny_data.read_indexed(pretrain_data.path / "train_a")
    assert int(big.tokens.max()) > 10
    cfg = small_cfg(2)
    cfg["model"] = section
    data = make_pretrain_data(tmp_path / "d2", pretrain_data.metadata["tokenizer"]["path"], ["x"], ["y"])
    write_indexed(data.path / "train_a", [[5000, 1, 0]])  # an id the tokenizer cannot have produced
    with pytest.raises(UserError, match="token id 5000"):
        pretrain.run(cfg, {"data": data}, tmp_path / "c")


def test_exit_interval_then_continue_full(tmp_path, pretrain_data, tiny_model_dir, capsys):
    """Phase 1 stops at exit_interval (checkpointed); phase 2 with from_model=full continues that
    run's iteration, optimizer and schedule to train_iters."""
    cfg = small_cfg(10, exit_interval=6, eval_interval=100)
    phase1 = pretrain.run(cfg, {"data": pretrain_data}, tmp_path / "p1")
    assert phase1["iteration"] == 6 and "exit_interval reached at iteration 6" in capsys.readouterr().out
    cfg2 = small_cfg(10, exit_interval=None, eval_interval=100)
    cfg2["checkpoint"] = {"save_interval": 1000, "from_model": "full"}
    model_in = types.SimpleNamespace(path=tmp_path / "p1", metadata=phase1)
    phase2 = pretrain.run(cfg2, {"data": pretrain_data, "model": model_in}, tmp_path / "p2")
    out = capsys.readouterr().out
    assert "at iteration 6" in out and phase2["iteration"] == 10
    lrs = json.loads((tmp_path / "p2" / "metrics.json").read_text())["lr"]
    assert [s for s, _ in lrs] == list(range(1, 11))  # one continued curve
    assert lrs[6][1] == pytest.approx(training.lr_at(6, cfg2["optimizer"], 10))
    p1_lrs = json.loads((tmp_path / "p1" / "metrics.json").read_text())["lr"]
    assert lrs[:6] == p1_lrs
    no_ckpt = types.SimpleNamespace(path=tiny_model_dir, metadata={})
    with pytest.raises(UserError, match="no checkpoints"):
        pretrain.run(cfg2, {"data": pretrain_data, "model": no_ckpt}, tmp_path / "p3")
