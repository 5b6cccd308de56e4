"""Eval stage of the tiny backend: real lm-eval runs on the local tasks for every input model (earlier
stages' models, the model, its quantized versions), the results table, and the regression gate."""

from __future__ import annotations

import json
import shutil
import types

import pytest
import torch
from conftest import torch_module_marks
from super3.tiny import eval as E
from super3.tiny import model as tiny_model
from super3.tiny import quantize as Q

from nemotron.errors import UserError
from nemotron.node import results as R

pytestmark = torch_module_marks()


def _art(path, metadata=None):
    return types.SimpleNamespace(path=path, metadata=metadata or {})


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_model_dir):
    """A quantized-model artifact (FP8 + NVFP4 conservative) of the untrained tiny model."""
    cfg = {
        "quant": {
            "configs": ["mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"],
            "calib_size": 8,
            "calib_seq_length": 64,
            "calib_batch_size": 4,
        }
    }
    out = tmp_path_factory.mktemp("quantized")
    meta = Q.run(cfg, {"model": _art(tiny_model_dir)}, out)
    return _art(out, meta)


def _eval_cfg(limit=6, tolerance=0.05):
    return {
        "eval": {"tasks": ["tiny_addition", "tiny_prose_ppl"], "limit": limit, "batch_size": 8, "tolerance": tolerance}
    }


def test_local_tasks_are_found_offline():
    manager = E.task_manager()
    assert {"tiny_addition", "tiny_prose_ppl"} <= set(manager.all_tasks)
    with pytest.raises(UserError, match="unknown eval task"):
        E.evaluate(None, None, ["tiny_nope"], limit=1, batch_size=1, manager=manager)


def test_eval_runs_lm_eval_and_writes_the_table(tmp_path, tiny_model_dir, quantized):
    out = tmp_path / "results"
    meta = E.run(_eval_cfg(), {"model": _art(tiny_model_dir), "quantized": quantized}, out)
    results = R.read_results(out)
    assert [m["label"] for m in results["models"]] == ["model", "fp8", "nvfp4"]
    assert [m["baseline"] for m in results["models"]] == [None, "model", "model"]
    assert results["passed"] and meta["passed"]
    table = {t: {m["label"]: v for m, v in zip(results["models"], col, strict=True)} for t, col in _columns(results)}
    assert meta["scores"]["fp8"]["tiny_prose_ppl"] == table["tiny_prose_ppl"]["fp8"]
    for m in results["models"]:
        label = m["label"]
        add, ppl = m["metrics"]["tiny_addition"], m["metrics"]["tiny_prose_ppl"]
        assert 0.0 <= add["exact_match"] <= 1.0, label
        assert 1.0 < ppl["byte_perplexity"] < float("inf") and ppl["bits_per_byte"] > 0, label
        ex = m["examples"]["tiny_addition"][0]
        assert ex["prompt"].startswith("<|im_start|>user\nWhat is ") and ex["prompt"].endswith(
            "<|im_start|>assistant\n"
        )
    ppl = table["tiny_prose_ppl"]
    assert ppl["fp8"] != ppl["model"] and ppl["nvfp4"] != ppl["model"]  # the quantizers were active
    assert len(results["checks"]) == 4 and all(c["passed"] for c in results["checks"])
    md = (out / E.RESULTS_MD).read_text()
    assert "| task (metric) | model | fp8 | nvfp4 |" in md and "tiny_prose_ppl (byte_perplexity" in md
    shown = R.show_results(out)
    assert "nvfp4" in shown and "PASSED" in shown
    scripts = json.loads(R.show_results(out, "json"))
    assert [m["metrics"]["tiny_prose_ppl"] for m in scripts["models"]] == list(ppl.values())


def _columns(results):
    return [
        (task, [R.primary_scores(m, results["primary"])[task] for m in results["models"]])
        for task in results["primary"]
    ]


def test_earlier_models_are_evaluated_side_by_side_and_a_regression_fails(tmp_path, tiny_model_dir):
    """pretrain (reference) -> sft -> model; a wrecked later model fails the gate against its parent."""
    _broken_copy(tiny_model_dir, tmp_path / "wrecked")
    inputs = {
        "pretrain_model": _art(tmp_path / "wrecked"),
        "sft_model": _art(tiny_model_dir),
        "model": _art(tmp_path / "wrecked"),
    }
    out = tmp_path / "results"
    with pytest.raises(UserError, match="eval gate failed"):
        E.run(_eval_cfg(limit=3), inputs, out)
    results = R.read_results(out)
    assert [(m["label"], m["baseline"]) for m in results["models"]] == [
        ("pretrain", None),
        ("sft", None),
        ("model", "sft"),
    ]
    failed = {(c["model"], c["task"]) for c in results["checks"] if not c["passed"]}
    assert failed == {("model", "tiny_prose_ppl")}


def _broken_copy(src, dst):
    """A "quantized" model whose lm_head is wrecked: confident, wrong next-token predictions."""
    model, tok = tiny_model.load_model(src)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        model.lm_head.weight.copy_(torch.randn(model.lm_head.weight.shape, generator=g) * 5)
    tiny_model.save_model(model, tok, dst)
    (dst / Q.SUMMARY_FILE).write_text(json.dumps({"config": "broken", "format": "fp8", "variant": "conservative"}))


def test_tolerance_gate_fails_on_a_broken_quantized_model(tmp_path, tiny_model_dir):
    _broken_copy(tiny_model_dir, tmp_path / "q" / "broken")
    out = tmp_path / "results"
    with pytest.raises(UserError, match="eval gate failed"):
        E.run(_eval_cfg(limit=4), {"model": _art(tiny_model_dir), "quantized": _art(tmp_path / "q")}, out)
    results = R.read_results(out)  # written before failing, for inspection
    assert not results["passed"]
    failed = [c for c in results["checks"] if not c["passed"]]
    assert [(c["model"], c["task"]) for c in failed] == [("fp8", "tiny_prose_ppl")]
    assert failed[0]["regression"] > 0.05
    assert "FAIL" in (out / E.RESULTS_MD).read_text() and "FAILED" in R.show_results(out)


def test_identical_copy_passes_with_zero_tolerance(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "q" / "same")
    (tmp_path / "q" / "same" / Q.SUMMARY_FILE).write_text(json.dumps({"config": "same", "format": "fp8"}))
    meta = E.run(
        _eval_cfg(limit=3, tolerance=0.0),
        {"model": _art(tiny_model_dir), "quantized": _art(tmp_path / "q")},
        tmp_path / "r",
    )
    assert meta["passed"] and all(c["regression"] == 0 for c in R.read_results(tmp_path / "r")["checks"])


def test_labels_and_errors(tmp_path):
    a = _art(
        tmp_path, {"models": {"mamba_moe_fp8_conservative": {"dir": "x", "format": "fp8", "variant": "conservative"}}}
    )
    with pytest.raises(UserError, match="no config.json"):
        E.quantized_models(a)
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    two = {
        "mamba_moe_fp8_conservative": {"dir": "x", "format": "fp8", "variant": "conservative"},
        "mamba_moe_fp8_aggressive": {"dir": "y", "format": "fp8", "variant": "aggressive"},
    }
    assert [e["label"] for e in E.quantized_models(_art(tmp_path, {"models": two}))] == [
        "fp8_conservative",
        "fp8_aggressive",
    ]
    with pytest.raises(UserError, match="no quantized model"):
        E.quantized_models(_art(tmp_path / "x" / "missing"))
    with pytest.raises(UserError, match="no results.json"):
        R.show_results(tmp_path)


def test_bf16_only_when_no_quantized_input(tmp_path, tiny_model_dir):
    meta = E.run(_eval_cfg(limit=2), {"model": _art(tiny_model_dir), "quantized": None}, tmp_path / "r")
    assert meta["passed"] and R.read_results(tmp_path / "r")["checks"] == []
    assert list(meta["scores"]) == ["model"]
