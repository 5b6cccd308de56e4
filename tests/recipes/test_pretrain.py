"""Pretrain translation: train.yaml (phase1 / phase2 / long_context) -> Megatron-Bridge overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from super3.megatron import pretrain
from super3.megatron.common import apply_overrides, latest_iteration, tokenizer_overrides

from nemotron.errors import UserError

from .recipes_support import (
    artifact,
    bridge_keys_problems,
    literal_values,
    load_reference,
    megatron_model,
    missing_caller_keys,
    resolved_config,
)

BRIDGE = load_reference("megatron_bridge")


def _job(tmp_path, config="default", inputs=None, **overrides):
    cfg = resolved_config("pretrain", config, tmp_path, **overrides)
    return cfg, pretrain.build_pretrain_job(cfg, inputs, tmp_path / "out")


@pytest.mark.parametrize("config", ["default", "phase1", "phase2", "long_context"])
def test_every_emitted_key_is_a_published_bridge_field(tmp_path, pretrain_data, config):
    inputs = {"data": pretrain_data}
    if config in ("phase2", "long_context"):
        inputs["model"] = megatron_model(tmp_path / "prev")
    _, job = _job(tmp_path, config, inputs)
    assert bridge_keys_problems(job.overrides, BRIDGE) == []
    assert missing_caller_keys(job.recipe, job.overrides, BRIDGE) == []
    assert job.recipe in BRIDGE["functions"] and job.recipe_kwargs == {}
    assert job.overrides["mixed_precision"] in BRIDGE["mixed_precision_presets"]
    assert job.overrides["scheduler.lr_decay_style"] in literal_values(BRIDGE, "SchedulerConfig", "lr_decay_style")
    if "scheduler.lr_wsd_decay_style" in job.overrides:
        wsd = literal_values(BRIDGE, "SchedulerConfig", "lr_wsd_decay_style")
        assert job.overrides["scheduler.lr_wsd_decay_style"] in wsd


def test_phase1_carries_the_published_schedule_and_layout(tmp_path, pretrain_data):
    _, job = _job(tmp_path, "phase1", {"data": pretrain_data})
    o = job.overrides
    assert (o["train.train_iters"], o["train.exit_interval"]) == (993404, 794723)
    assert (o["train.global_batch_size"], o["train.micro_batch_size"], o["model.seq_length"]) == (3072, 1, 8192)
    assert o["scheduler.lr_decay_style"] == "WSD" and o["scheduler.lr_wsd_decay_style"] == "minus_sqrt"
    assert (o["scheduler.lr_warmup_iters"], o["scheduler.lr_decay_iters"], o["scheduler.lr_wsd_decay_iters"]) == (
        7949,
        992411,
        198682,
    )
    assert (o["optimizer.lr"], o["optimizer.min_lr"]) == (4.5e-4, 4.5e-6)
    # Megatron-Bridge v0.4.0 docs: TP4 EP64 on at least 8 nodes (the recipe function's EP8 does not fit)
    assert o["model.tensor_model_parallel_size"] == 4 and o["model.expert_model_parallel_size"] == 64
    assert o["model.sequence_parallel"] is True and o["mixed_precision"] == "nemotron_3_super_bf16_with_nvfp4_mixed"
    assert o["checkpoint.save"] == str(tmp_path / "out" / "checkpoints") and o["checkpoint.save_interval"] == 200
    assert o["checkpoint.load"] is None and o["checkpoint.pretrained_checkpoint"] is None
    # The published architecture comes from the recipe: no model-shape overrides at all.
    assert not [k for k in o if k.startswith("model.") and "parallel" not in k and k != "model.seq_length"]
    assert not job.resume


def test_phase2_continues_the_phase1_run(tmp_path, pretrain_data):
    phase1 = megatron_model(tmp_path / "phase1", iteration=794723)
    _, job = _job(tmp_path, "phase2", {"data": pretrain_data, "model": phase1})
    o = job.overrides
    assert o["checkpoint.load"] == str(tmp_path / "phase1" / "checkpoints")
    assert o["checkpoint.finetune"] is False and o["checkpoint.pretrained_checkpoint"] is None
    assert o["train.train_iters"] == 993404 and "train.exit_interval" not in o
    assert o["scheduler.override_opt_param_scheduler"] is True


def test_long_context_starts_from_phase2_weights_with_its_own_layout(tmp_path, pretrain_data):
    phase2 = megatron_model(tmp_path / "phase2", iteration=993404)
    _, job = _job(tmp_path, "long_context", {"data": pretrain_data, "model": phase2})
    o = job.overrides
    assert (o["model.seq_length"], o["dataset.seq_length"], o["train.global_batch_size"]) == (1048576, 1048576, 16)
    assert (
        o["model.tensor_model_parallel_size"],
        o["model.context_parallel_size"],
        o["model.expert_model_parallel_size"],
    ) == (2, 64, 64)
    assert o["scheduler.lr_decay_style"] == "constant" and "scheduler.lr_wsd_decay_iters" not in o
    assert (o["optimizer.lr"], o["optimizer.min_lr"], o["train.train_iters"]) == (4.5e-6, 1e-6, 2027)
    assert o["checkpoint.pretrained_checkpoint"] == str(tmp_path / "phase2" / "checkpoints")
    assert o["checkpoint.finetune"] is True and o["checkpoint.load"] is None


def test_blend_matches_megatron_core_parsing_and_opens_every_shard(tmp_path, pretrain_data):
    from megatron.core.datasets.blended_megatron_dataset_config import BlendedMegatronDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    blend = pretrain.blend_per_split(pretrain_data.path)
    root = Path(pretrain_data.path)
    expected = get_blend_from_list(["0.7", str(root / "shards/train_0"), "0.3", str(root / "shards/train_1")])
    assert (list(blend[0][0]), list(blend[0][1])) == (list(expected[0]), list(expected[1]))
    assert blend[1] == ([str(root / "shards/valid_0")], [1.0]) and blend[2] is None
    # megatron-core accepts it as a per-split blend (its __post_init__ validates the structure).
    config = BlendedMegatronDatasetConfig(random_seed=1, sequence_length=8, blend_per_split=blend, split=None)
    assert not getattr(config, "mock", False)
    docs = [len(IndexedDataset(p)) for split in blend if split for p in split[0]]
    assert docs == [2, 1, 1]


def test_requeued_job_resumes_from_its_own_checkpoint(tmp_path, pretrain_data):
    out = tmp_path / "out"
    phase1 = megatron_model(tmp_path / "phase1", iteration=794723)
    (out / "checkpoints" / "iter_0795000").mkdir(parents=True)
    # An iteration directory without the tracker is an interrupted save: not a checkpoint to resume.
    _, fresh = _job(tmp_path, "phase2", {"data": pretrain_data, "model": phase1})
    assert not fresh.resume and fresh.overrides["checkpoint.load"] == str(phase1.path) + "/checkpoints"
    (out / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("795000\n")
    _, job = _job(tmp_path, "phase2", {"data": pretrain_data, "model": phase1})
    assert job.resume and job.overrides["checkpoint.load"] == str(out / "checkpoints")
    assert job.overrides["checkpoint.finetune"] is False and job.overrides["checkpoint.pretrained_checkpoint"] is None
    assert any("resuming" in note for note in job.notes)
    assert latest_iteration(out / "checkpoints") == 795000


def test_user_errors_name_the_problem(tmp_path, pretrain_data):
    big_vocab = artifact("d", "pretrain-data", tmp_path, {"tokenizer": {"vocab_size": 200000}})
    with pytest.raises(UserError, match="200000"):
        tokenizer_overrides(big_vocab.metadata, 131072, "pretrain")
    with pytest.raises(UserError, match="no Megatron checkpoint"):
        plain = artifact("m", "model", tmp_path / "nothing")
        _job(tmp_path, "phase2", {"data": pretrain_data, "model": plain})
    with pytest.raises(UserError, match="cannot be changed"):
        _job(tmp_path, "default", {"data": pretrain_data}, **{"model.mamba_conv_kernel": 8})
    (Path(pretrain_data.path) / "shards" / "train_1.idx").unlink()
    with pytest.raises(UserError, match="train_1.idx"):
        _job(tmp_path, "default", {"data": pretrain_data})


def test_architecture_changes_map_to_provider_fields(tmp_path, pretrain_data):
    pattern = "M*EM"
    _, job = _job(
        tmp_path, "default", {"data": pretrain_data}, **{"model.num_layers": 4, "model.hybrid_pattern": pattern}
    )
    assert job.overrides["model.num_layers"] == 4 and job.overrides["model.hybrid_override_pattern"] == pattern
    assert bridge_keys_problems(job.overrides, BRIDGE) == []


def test_overrides_apply_onto_a_config_object_tree(tmp_path, pretrain_data):
    """apply_overrides walks dotted paths and refuses a path the object does not have."""
    from types import SimpleNamespace

    cfg = SimpleNamespace(train=SimpleNamespace(train_iters=0), mixed_precision="bf16_mixed")
    apply_overrides(cfg, {"train.train_iters": 5, "mixed_precision": "x"})
    assert cfg.train.train_iters == 5 and cfg.mixed_precision == "x"
    with pytest.raises(AttributeError, match="train_iter"):
        apply_overrides(cfg, {"train.train_iter": 5})


def test_metadata_reports_the_iteration_in_megatrons_tracker(tmp_path, pretrain_data):
    """The published metadata reads Megatron's own tracker file; no checkpoint means no publish."""
    cfg, job = _job(tmp_path, "default", {"data": pretrain_data})
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="without a checkpoint"):
        pretrain.result_metadata(job, cfg, out)
    megatron_model(out, iteration=400)  # checkpoints/iter_0000400 + latest_checkpointed_iteration.txt
    meta = pretrain.result_metadata(job, cfg, out)
    assert meta["iteration"] == 400 and meta["megatron_checkpoint"] == "checkpoints"
    assert meta["tokens_seen"] == 400 * 3072 * 8192 and meta["phase"] == "phase1"


def test_tokenizer_is_the_one_data_prep_recorded(tmp_path, pretrain_data):
    """Data prep records the tokenizer file; an HF tokenizer loads from its directory (no hub id)."""
    _, job = _job(tmp_path, "default", {"data": pretrain_data})
    assert job.overrides["tokenizer.tokenizer_type"] == "HuggingFaceTokenizer"
    assert job.overrides["tokenizer.tokenizer_model"] == str(tmp_path / "tok")
    tik = {"tokenizer": {"path": "/data/tok.tiktoken", "kind": "tiktoken", "vocab_size": 1000}}
    assert tokenizer_overrides(tik, 131072, "pretrain") == {
        "tokenizer.tokenizer_type": "TikTokenizer",
        "tokenizer.tokenizer_model": "/data/tok.tiktoken",
    }
    types = BRIDGE["classes"]["TokenizerConfig"]["fields"]["tokenizer_type"]["type"]
    assert "'HuggingFaceTokenizer'" in types and "'TikTokenizer'" in types
    with pytest.raises(UserError, match="records no tokenizer"):
        tokenizer_overrides({}, 131072, "pretrain")


@pytest.mark.parametrize(
    ("recompute", "expected"),
    [
        ("none", {}),
        ("selective", {"model.recompute_granularity": "selective"}),
        (
            "full",
            {
                "model.recompute_granularity": "full",
                "model.recompute_method": "uniform",
                "model.recompute_num_layers": 1,
            },
        ),
    ],
)
def test_recompute_maps_to_megatron_core_fields(tmp_path, pretrain_data, recompute, expected):
    _, job = _job(tmp_path, "default", {"data": pretrain_data}, **{"train.recompute": recompute})
    emitted = {k: v for k, v in job.overrides.items() if "recompute" in k}
    assert emitted == expected
    assert bridge_keys_problems(job.overrides, BRIDGE) == []


def test_recompute_lowers_the_planned_memory():
    from nemotron.config.loader import load_stage_config
    from nemotron.launch.estimates import estimates_for
    from nemotron.pipeline.stages import get_stage

    stage = get_stage("pretrain")

    def memory_gib(recompute: str) -> float:
        data = load_stage_config(stage, cli_overrides={"train.recompute": recompute}).data
        row = dict(estimates_for(stage, data))["memory (estimate)"]
        return float(row.split(" GiB")[0])

    assert memory_gib("full") < memory_gib("selective") < memory_gib("none")
