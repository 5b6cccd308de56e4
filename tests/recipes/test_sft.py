"""SFT translation: full and LoRA recipes, packed Parquet dataset, resume, HF export."""

from __future__ import annotations

from pathlib import Path

import pytest
from super3.megatron import sft
from super3.megatron.common import SUPER_HF_MODEL_ID

from nemotron.errors import UserError

from .recipes_support import (
    SFT_ROWS,
    artifact,
    bridge_keys_problems,
    call_problems,
    load_reference,
    megatron_model,
    missing_caller_keys,
    resolved_config,
    signature_problems,
    spec_problems,
    write_packed_parquet,
)

BRIDGE = load_reference("megatron_bridge")


def _job(tmp_path, config, inputs, **overrides):
    cfg = resolved_config("sft", config, tmp_path, **overrides)
    return cfg, sft.build_sft_job(cfg, inputs, tmp_path / "out")


@pytest.mark.parametrize("config", ["default", "lora"])
def test_keys_and_dataset_spec_are_published_names(tmp_path, sft_data, config):
    _, job = _job(tmp_path, config, {"model": megatron_model(tmp_path / "base"), "data": sft_data})
    assert bridge_keys_problems(job.overrides, BRIDGE) == []
    assert spec_problems(job.dataset, BRIDGE) == []
    assert missing_caller_keys(job.recipe, job.overrides, BRIDGE, job.dataset) == []
    recipe = BRIDGE["functions"][job.recipe]["params"]
    assert signature_problems(job.recipe, job.recipe_kwargs, recipe) == []
    assert job.entry == "finetune"
    assert call_problems(sft.hf_export_call(job), BRIDGE) == []


def test_full_sft_reads_the_packed_parquet_and_starts_from_pretrained_weights(tmp_path, sft_data):
    base = megatron_model(tmp_path / "base", iteration=2027)
    _, job = _job(tmp_path, "default", {"model": base, "data": sft_data})
    name, kwargs = job.dataset
    specs = kwargs["packed_sequence_specs"][1]
    assert name == "FinetuningDatasetConfig" and kwargs["dataset_root"] == sft_data.path
    assert specs["packed_train_data_path"] == str(Path(sft_data.path) / "splits" / "train")
    assert specs["packed_val_data_path"] == str(Path(sft_data.path) / "splits" / "valid")
    assert specs["packed_sequence_size"] == 4096 and kwargs["seq_length"] == 4096 and kwargs["do_validation"]
    o = job.overrides
    assert job.recipe == "nemotron_3_super_sft_config" and "peft.dim" not in o
    assert o["checkpoint.pretrained_checkpoint"] == str(tmp_path / "base" / "checkpoints")
    assert o["checkpoint.finetune"] is True and o["checkpoint.load"] is None
    assert (o["train.train_iters"], o["train.global_batch_size"], o["optimizer.lr"]) == (1700, 128, 5e-6)
    # v0.4.0 slurm_sft.sh layout TP8 EP64 (the recipe function's TP1 EP8 does not fit by the plan)
    assert (o["model.tensor_model_parallel_size"], o["model.expert_model_parallel_size"]) == (8, 64)
    assert o["mixed_precision"] == "bf16_mixed"
    # No HF export next to the base checkpoint: the published Super HF config is the export template.
    assert job.hf_export == {"hf_model_id": SUPER_HF_MODEL_ID, "hf_dir": str(tmp_path / "out" / "hf")}


def test_export_template_prefers_the_input_models_hf_dir(tmp_path, sft_data):
    base = megatron_model(tmp_path / "base", hf=True)
    _, job = _job(tmp_path, "default", {"model": base, "data": sft_data})
    assert job.hf_export["hf_model_id"] == str(tmp_path / "base" / "hf")


def test_lora_uses_the_peft_recipe_with_the_published_adapter(tmp_path, sft_data):
    _, job = _job(tmp_path, "lora", {"model": megatron_model(tmp_path / "base"), "data": sft_data})
    o = job.overrides
    assert job.recipe == "nemotron_3_super_peft_config" and job.recipe_kwargs == {"peft_scheme": "lora"}
    assert (o["peft.dim"], o["peft.alpha"], o["peft.dropout"]) == (32, 32, 0.0)
    assert o["peft.target_modules"] == ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2", "in_proj", "out_proj"]
    assert o["optimizer.lr"] == 1e-4
    layout = [o[f"model.{k}_parallel_size"] for k in ("tensor_model", "context", "expert_model")]
    assert layout == [4, 1, 8] and o["model.sequence_parallel"] is True


def test_lora_ends_in_a_merged_hf_model(tmp_path, sft_data):
    """LoRA: merge_lora.py (flags checked against the pinned script) then export_ckpt of the merge."""
    base = megatron_model(tmp_path / "base")
    cfg, job = _job(tmp_path, "lora", {"model": base, "data": sft_data})
    out = tmp_path / "out"
    merged = out / "merged"
    script = BRIDGE["scripts"]["examples/peft/merge_lora.py"]["flags"]
    assert signature_problems("merge_lora.py", job.lora_merge, script) == []
    assert job.lora_merge["--pretrained"] == str(tmp_path / "base" / "checkpoints")
    assert job.lora_merge["--output"] == str(merged) and job.lora_merge["--cpu"] is True
    call = sft.hf_export_call(job)
    assert call_problems(call, BRIDGE) == []
    assert call.kwargs == {"megatron_path": str(merged), "hf_path": str(out / "hf")}
    megatron_model(out, iteration=1700)  # the adapter checkpoint finetune() leaves
    argv = sft.merge_argv(job)
    assert argv[argv.index("--lora-checkpoint") + 1] == str(out / "checkpoints" / "iter_0001700")
    assert "--cpu" in argv and argv[1].endswith("examples/peft/merge_lora.py")
    with pytest.raises(RuntimeError, match="merge left no checkpoint"):
        sft.result_metadata(job, cfg, out)
    (merged / "iter_0000000").mkdir(parents=True)
    (merged / "latest_checkpointed_iteration.txt").write_text("0")
    (out / "hf").mkdir()
    (out / "hf" / "config.json").write_text("{}")
    meta = sft.result_metadata(job, cfg, out)
    assert (meta["megatron_checkpoint"], meta["adapter_checkpoint"], meta["hf_dir"]) == ("merged", "checkpoints", "hf")
    then = job.library_config()["then"]
    assert [step.get("script") or step.get("call") for step in then] == [
        "examples/peft/merge_lora.py",
        "AutoBridge.export_ckpt",
    ]


def test_requeued_lora_keeps_loading_the_frozen_base(tmp_path, sft_data):
    ckpt = tmp_path / "out" / "checkpoints"
    (ckpt / "iter_0000200").mkdir(parents=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("200")
    _, job = _job(tmp_path, "lora", {"model": megatron_model(tmp_path / "base"), "data": sft_data})
    assert job.resume and job.overrides["checkpoint.load"] == str(ckpt)
    base = str(tmp_path / "base" / "checkpoints")
    assert job.overrides["checkpoint.pretrained_checkpoint"] == base and job.lora_merge["--pretrained"] == base


def test_requeued_sft_resumes_its_own_checkpoint(tmp_path, sft_data):
    ckpt = tmp_path / "out" / "checkpoints"
    (ckpt / "iter_0000200").mkdir(parents=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text("200")
    _, job = _job(tmp_path, "default", {"model": megatron_model(tmp_path / "base"), "data": sft_data})
    assert job.resume and job.overrides["checkpoint.load"] == str(ckpt)
    assert job.overrides["checkpoint.finetune"] is False and job.overrides["checkpoint.pretrained_checkpoint"] is None


def test_other_parquet_layouts(tmp_path):
    flat = tmp_path / "flat"
    write_packed_parquet(flat / "part-0.parquet", SFT_ROWS)
    assert sft.packed_splits(flat) == {"train": str(flat), "valid": None}
    named = tmp_path / "named"
    write_packed_parquet(named / "train-00000.parquet", SFT_ROWS)
    write_packed_parquet(named / "val-00000.parquet", SFT_ROWS)
    assert sft.packed_splits(named) == {"train": str(named / "train*.parquet"), "valid": str(named / "val*.parquet")}
    declared = sft.packed_splits(named, {"splits": {"train": "x/train", "valid": "/abs/valid"}})
    assert declared == {"train": str(named / "x" / "train"), "valid": "/abs/valid"}
    with pytest.raises(UserError, match="no packed Parquet"):
        sft.packed_splits(tmp_path / "empty")


def test_user_errors(tmp_path, sft_data):
    model = megatron_model(tmp_path / "base")
    with pytest.raises(UserError, match="packed to 2048"):
        data = artifact("sft-data", "sft-data", Path(sft_data.path), {"pack_size": 2048})
        _job(tmp_path, "default", {"model": model, "data": data})
    with pytest.raises(UserError, match="token-aligned"):  # format 1 of data prep sft: off by one for MB
        data = artifact("sft-data", "sft-data", Path(sft_data.path), {"kind": "sft-data", "pack_size": 4096})
        _job(tmp_path, "default", {"model": model, "data": data})
    data = artifact("sft-data", "sft-data", Path(sft_data.path),
                    {**sft_data.metadata, "kind": "sft-data", "loss_mask_alignment": "label"})  # fmt: skip
    assert _job(tmp_path, "default", {"model": model, "data": data})[1].dataset
    with pytest.raises(UserError, match="needs recipe nemotron_3_super_peft_config"):
        _job(tmp_path, "default", {"model": model, "data": sft_data}, **{"peft.method": "lora"})
    with pytest.raises(UserError, match="has no Megatron checkpoint"):
        _job(tmp_path, "default", {"model": artifact("m", "model", tmp_path / "void"), "data": sft_data})


def test_metadata_needs_the_checkpoint_and_the_hf_export(tmp_path, sft_data):
    cfg, job = _job(tmp_path, "default", {"model": megatron_model(tmp_path / "base"), "data": sft_data})
    out = tmp_path / "out"
    megatron_model(out, iteration=1700)
    with pytest.raises(RuntimeError, match="HF export missing"):
        sft.result_metadata(job, cfg, out)
    (out / "hf").mkdir()
    (out / "hf" / "config.json").write_text("{}")
    meta = sft.result_metadata(job, cfg, out)
    assert meta["iteration"] == 1700 and meta["hf_dir"] == "hf" and meta["format"] == "megatron+hf"
    assert meta["megatron_checkpoint"] == "checkpoints" and meta["pack_size"] == 4096


def test_data_prep_layout_shards_per_key_with_split_files(tmp_path):
    """data prep sft writes shards/<key>/<split>.parquet and lists them in metadata splits.<name>.files."""
    from super3.megatron.quantize import calibration_samples

    root = tmp_path / "prep"
    for key in ("a1", "b2"):
        write_packed_parquet(root / "shards" / key / "train.parquet", SFT_ROWS)
    write_packed_parquet(root / "shards" / "a1" / "valid.parquet", SFT_ROWS[:1])
    meta = {
        "pack_size": 4096,
        "splits": {
            "train": {"files": ["shards/a1/train.parquet", "shards/b2/train.parquet"], "packs": 6},
            "valid": {"files": ["shards/a1/valid.parquet"], "packs": 1},
        },
    }
    found = sft.packed_splits(root, meta)
    assert found == {
        "train": str(root / "shards" / "*" / "train.parquet"),
        "valid": str(root / "shards/a1/valid.parquet"),
    }
    assert sft.packed_splits(root) == {
        "train": str(root / "shards" / "*" / "train.parquet"),
        "valid": str(root / "shards" / "*" / "valid.parquet"),
    }
    # An empty split (no valid fraction) means no validation, not an error.
    meta["splits"]["valid"]["files"] = []
    assert sft.packed_splits(root, meta)["valid"] is None
    assert len(calibration_samples(root, size=100, seq_length=64, metadata=meta)) == 2 * 6
    with pytest.raises(UserError, match="cannot be named"):
        (root / "shards" / "c3").mkdir()
        write_packed_parquet(root / "shards" / "c3" / "train.parquet", SFT_ROWS)
        sft.packed_splits(root, meta)
