"""``model import`` / ``model export``: the Megatron-Bridge command lines (checked against the scripts'
argument lists at the pinned tag), the verdict parsing, and the tiny identity conversion run for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nemotron.errors import UserError
from tests.recipes.recipes_support import artifact, resolved_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))

from super3.megatron import convert  # noqa: E402


def _hf(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["NemotronHForCausalLM"]}')
    (root / "model.safetensors").write_bytes(b"\0" * 8)
    return root


def _megatron(root: Path) -> Path:
    (root / "checkpoints" / "iter_0000100").mkdir(parents=True)
    (root / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("100")
    return root


def _args_ok(command: list[str]) -> None:
    key, names = convert.script_args(command)
    required, optional = convert.SCRIPT_ARGS[key]
    assert set(names) <= set(required) | set(optional), (key, set(names) - set(required) - set(optional))
    assert set(required) <= set(names), (key, set(required) - set(names))


def test_import_runs_the_published_multi_gpu_conversion_tp1_ep8(tmp_path):
    cfg = resolved_config("model.import", "default", tmp_path, **{"verify.enabled": True})
    model = artifact("super3-released", "model", _hf(tmp_path / "released"))
    job = convert.build_convert_job(cfg, {"model": model}, tmp_path / "out")
    assert job.convert[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=8"]
    assert job.convert[4] == "/opt/Megatron-Bridge/examples/conversion/convert_checkpoints_multi_gpu.py"
    flat = " ".join(job.convert)
    assert "import --hf-model " + str(tmp_path / "released") in flat
    assert "--tp 1 --pp 1 --ep 8 --etp 1 --torch-dtype bfloat16 --trust-remote-code" in flat
    assert job.megatron_dir == tmp_path / "out" / "checkpoints"
    assert set(job.checks) == {"roundtrip", "compare_outputs"}
    for command in [job.convert, *job.checks.values()]:
        _args_ok(command)
    assert "--megatron-load-path" in job.checks["roundtrip"] and "--skip-save" in job.checks["roundtrip"]


def test_export_uses_the_megatron_checkpoint_and_a_template(tmp_path):
    cfg = resolved_config("model.export", "default", tmp_path)
    model = artifact("sft-lora-model", "model", _megatron(tmp_path / "m"))
    job = convert.build_convert_job(cfg, {"model": model}, tmp_path / "out")
    _args_ok(job.convert)
    flat = " ".join(job.convert)
    assert f"--megatron-path {tmp_path / 'm' / 'checkpoints'} --hf-path {tmp_path / 'out' / 'hf'}" in flat
    assert "--hf-model nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16" in flat and not job.checks


@pytest.mark.parametrize(
    ("stage", "make", "message"),
    [
        ("model.import", _megatron, "has no Hugging Face checkpoint"),
        ("model.export", _hf, "has no Megatron checkpoint"),
    ],
)
def test_wrong_input_format_is_one_line(tmp_path, stage, make, message):
    cfg = resolved_config(stage, "default", tmp_path)
    with pytest.raises(UserError, match=message):
        convert.build_convert_job(cfg, {"model": artifact("m", "model", make(tmp_path / "m"))}, tmp_path / "o")


def test_a_layout_that_does_not_fit_the_node_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not divide the 8 GPUs"):
        resolved_config("model.import", "default", tmp_path, **{"parallel.expert": 16})  # config validation
    cfg = resolved_config("model.import", "default", tmp_path)
    cfg["parallel"]["expert"] = 16  # a train.yaml edited by hand: the node refuses it too
    with pytest.raises(UserError, match="does not fit 8 GPU"):
        convert.build_convert_job(cfg, {"model": artifact("m", "model", _hf(tmp_path / "m"))}, tmp_path / "o")


def test_compare_verdict_is_parsed_from_the_scripts_own_lines():
    out = "=== COMPARISON ===\nToken match: True ✅\nLogits diff - max: 0.1, mean: 0.01\nCosine similarity: 0.995000 (99.50%) ✅\n"
    assert convert.parse_compare(out, 0.98) == {
        "token_match": True,
        "cosine": 0.995,
        "min_cosine": 0.98,
        "passed": True,
    }
    assert not convert.parse_compare(out.replace("0.995000", "0.900000"), 0.98)["passed"]
    assert not convert.parse_compare(out.replace("True", "False"), 0.98)["passed"]
    assert not convert.parse_compare("crashed", 0.98)["passed"]


def test_off_the_container_the_node_says_so_in_one_line(tmp_path):
    cfg = resolved_config("model.import", "default", tmp_path)
    with pytest.raises(UserError, match="convert_checkpoints_multi_gpu.py not found in this container"):
        convert.run(cfg, {"model": artifact("m", "model", _hf(tmp_path / "m"))}, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing half-written
