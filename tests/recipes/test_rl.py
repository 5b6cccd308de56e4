"""RL translation: the NeMo-RL GRPO master config for rlvr / swe1 / swe2 / rlhf."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from super3.megatron import rl

from nemotron.errors import UserError

from .recipes_support import hf_model, load_reference, megatron_model, resolved_config, tree_problems

NEMO_RL = load_reference("nemo_rl")
SUBSTAGES = ["rlvr", "swe1", "swe2", "rlhf"]


def _config(tmp_path, sub, rl_data, **overrides):
    cfg = resolved_config(f"rl.{sub}", "default", tmp_path, **overrides)
    return cfg, rl.build_grpo_config(cfg, {"model": hf_model(tmp_path / "model"), "data": rl_data}, tmp_path / "out")


@pytest.mark.parametrize("sub", SUBSTAGES)
def test_every_key_is_a_published_nemo_rl_key(tmp_path, rl_data, sub):
    cfg, config = _config(tmp_path, sub, rl_data)
    assert tree_problems(config, NEMO_RL["master_config"]) == []
    data = config["data"]
    assert data["default"]["dataset_name"] in NEMO_RL["datasets"]
    assert data["default"]["processor"] in NEMO_RL["processors"]
    cmd = rl.grpo_command(cfg, "x.yaml")
    assert cmd[3] in NEMO_RL["script_args"] and cmd[4] in NEMO_RL["script_args"][cmd[3]]


@pytest.mark.parametrize(
    ("sub", "prompts", "gens", "seq", "tp", "cp", "lr", "kl", "gen_nodes", "cluster_nodes", "save"),
    [
        ("rlvr", 256, 16, 65536, 4, 8, 3e-6, 0.0, 72, 104, 10),
        ("swe1", 64, 16, 131072, 8, 8, 1e-6, 0.0, 32, 64, 5),
        ("swe2", 16, 32, 196608, 8, 8, 1e-6, 0.0, 32, 64, 2),
        ("rlhf", 128, 16, 49152, 4, 4, 1e-6, 1e-4, 32, 72, 4),
    ],
)
def test_published_values_per_substage(
    tmp_path, rl_data, sub, prompts, gens, seq, tp, cp, lr, kl, gen_nodes, cluster_nodes, save
):
    _, c = _config(tmp_path, sub, rl_data)
    g, p, m = c["grpo"], c["policy"], c["policy"]["megatron_cfg"]
    assert (g["num_prompts_per_step"], g["num_generations_per_prompt"]) == (prompts, gens)
    assert p["train_global_batch_size"] == prompts * gens and p["max_total_sequence_length"] == seq
    assert (m["tensor_model_parallel_size"], m["context_parallel_size"], m["expert_model_parallel_size"]) == (tp, cp, 8)
    assert m["optimizer"]["lr"] == m["optimizer"]["min_lr"] == lr
    assert c["loss_fn"]["reference_policy_kl_penalty"] == kl
    assert (c["loss_fn"]["ratio_clip_min"], c["loss_fn"]["ratio_clip_max"]) == (0.2, 0.28)
    assert p["generation"]["colocated"] == {"enabled": False, "resources": {"gpus_per_node": 8, "num_nodes": gen_nodes}}
    assert p["generation"]["vllm_cfg"]["max_model_len"] == seq and g["async_grpo"]["enabled"] is True
    assert c["cluster"] == {"gpus_per_node": 8, "num_nodes": cluster_nodes}
    assert c["checkpointing"]["save_period"] == save and c["checkpointing"]["checkpoint_must_save_by"] == "00:03:30:00"
    assert c["checkpointing"]["checkpoint_dir"] == str(tmp_path / "out" / "checkpoints")
    assert p["model_name"] == p["tokenizer"]["name"] == str(tmp_path / "model" / "hf")


def test_rlvr_uses_the_math_environment_on_our_jsonl(tmp_path, rl_data):
    cfg, c = _config(tmp_path, "rlvr", rl_data)
    train = c["data"]["train"]
    assert train["data_path"] == str(Path(rl_data.path) / "train.jsonl")
    assert (train["input_key"], train["output_key"]) == ("prompt", "answer")
    assert c["data"]["default"]["env_name"] == "math" and "math" in c["env"]
    assert (c["grpo"]["max_val_samples"], c["grpo"]["val_batch_size"]) == (3, 3)
    assert rl.grpo_command(cfg, "c.yaml") == ["uv", "run", "python", "examples/run_grpo_math.py", "--config", "c.yaml"]


def test_swe_and_rlhf_run_through_nemo_gym(tmp_path, rl_data):
    cfg, c = _config(tmp_path, "swe2", rl_data)
    assert c["env"]["should_use_nemo_gym"] and c["data"]["default"]["dataset_name"] == "NemoGymDataset"
    assert c["env"]["nemo_gym"]["config_paths"][1].endswith("swebench_openhands_training.yaml")
    assert rl.grpo_command(cfg, "c.yaml")[3] == "examples/nemo_gym/run_grpo_nemo_gym.py"
    _, h = _config(tmp_path, "rlhf", rl_data, **{"env.reward_model": "/models/genrm"})
    assert h["env"]["nemo_gym"]["num_gpu_nodes"] == 8
    assert h["env"]["nemo_gym"]["genrm_model"]["responses_api_models"]["vllm_model"]["model"] == "/models/genrm"


def test_colocated_generation_and_config_written_as_yaml(tmp_path, rl_data):
    overrides = {"policy.generation.colocated": True, "policy.generation.nodes": 0, "env.gpu_nodes": 0}
    overrides |= {"resources.nodes": 4, "parallel.context": 1}
    _, c = _config(tmp_path, "rlvr", rl_data, **overrides)
    assert c["policy"]["generation"]["colocated"]["enabled"] is True and c["grpo"]["async_grpo"]["enabled"] is False
    path = tmp_path / "grpo.yaml"
    rl.write_config(c, path)
    assert yaml.safe_load(path.read_text()) == c


def test_user_errors(tmp_path, rl_data):
    cfg = resolved_config("rl.rlvr", "default", tmp_path)
    with pytest.raises(UserError, match="no Hugging Face export"):
        rl.build_grpo_config(cfg, {"model": megatron_model(tmp_path / "m"), "data": rl_data}, tmp_path / "out")
    with pytest.raises(UserError, match="must equal"):
        _config(tmp_path, "rlvr", rl_data, **{"policy.train_global_batch_size": 1024})
    with pytest.raises(UserError, match="val.jsonl"):
        (Path(rl_data.path) / "val.jsonl").unlink()
        _config(tmp_path, "rlvr", rl_data)
    with pytest.raises(UserError, match="run.data"):
        rl.build_grpo_config(cfg, {"model": hf_model(tmp_path / "m2")}, tmp_path / "out")


@pytest.mark.parametrize(
    ("limit", "expected"), [("04:00:00", "00:03:30:00"), ("1-00:00:00", "00:23:30:00"), ("2-12:00", "02:11:30:00")]
)
def test_must_save_by_leaves_half_an_hour(limit, expected):
    assert rl.must_save_by(limit) == expected


def test_latest_step_and_weights_and_run_boundary(tmp_path, rl_data, monkeypatch):
    ckpts = tmp_path / "out" / "checkpoints"
    for step in (10, 30, 20):
        (ckpts / f"step_{step}" / "policy" / "weights" / "iter_0000000").mkdir(parents=True)
    (ckpts / "step_x").mkdir()
    step, path = rl.latest_step(ckpts)
    assert step == 30 and rl.megatron_weights(path) == path / "policy" / "weights" / "iter_0000000"
    conv = rl.convert_command(path, rl.megatron_weights(path), tmp_path / "hf")
    assert conv[conv.index("--config") + 1] == str(path / "config.yaml")
    assert set(a for a in conv if a.startswith("--")) - {"--extra"} <= set(NEMO_RL["script_args"][rl.CONVERTER])

    cfg = resolved_config("rl.rlvr", "default", tmp_path)
    seen = {}
    monkeypatch.setattr(rl, "_launch", lambda train_cfg, config_path, out: seen.update(path=config_path))
    meta = rl.run(cfg, {"model": hf_model(tmp_path / "model"), "data": rl_data}, tmp_path / "out")
    assert yaml.safe_load(Path(seen["path"]).read_text())["grpo"]["num_prompts_per_step"] == 256
    assert meta["step"] == 30 and meta["hf_dir"] == "hf" and meta["environment"] == "math"


def test_inner_commands_for_the_dry_run(tmp_path):
    cfg = resolved_config("rl.swe1", "default", tmp_path)
    cmds = rl.inner_commands(cfg, tmp_path / "out")
    assert cmds[0][:4] == ["uv", "run", "python", "examples/nemo_gym/run_grpo_nemo_gym.py"]
    assert cmds[1][5] == rl.CONVERTER
