"""RL translation: the NeMo-RL GRPO master config for rlvr / swe1 / swe2 / rlhf."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from super3.megatron import rl

from nemotron.errors import UserError

from .recipes_support import hf_model, load_reference, megatron_model, resolved_config, tree_problems

NEMO_RL = load_reference("nemo_rl")
SUBSTAGES = ["rlvr", "rlvr2", "rlvr3", "swe1", "swe2", "rlhf"]
GYM_SCRIPT = "examples/nemo_gym/run_grpo_nemo_gym.py"


def _config(tmp_path, sub, data, **overrides):
    cfg = resolved_config(f"rl.{sub}", "default", tmp_path, **overrides)
    return cfg, rl.build_grpo_config(cfg, {"model": hf_model(tmp_path / "model"), "data": data}, tmp_path / "out")


def _get(config, dotted):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _missing_required(config, script):
    missing = []
    for key in NEMO_RL["required"][script]:
        try:
            _get(config, key)
        except KeyError:
            missing.append(key)
    return missing


@pytest.mark.parametrize("sub", SUBSTAGES)
def test_every_key_is_a_nemo_rl_key_and_every_required_key_is_there(tmp_path, gym_data, sub):
    """Both directions: nothing NeMo-RL does not know, nothing it reads without a default missing."""
    cfg, config = _config(tmp_path, sub, gym_data)
    assert tree_problems(config, NEMO_RL["master_config"]) == []
    script = rl.grpo_command(cfg, "x.yaml")[3]
    assert script == GYM_SCRIPT and script in NEMO_RL["script_args"]
    assert _missing_required(config, script) == []
    data = config["data"]
    assert data["default"]["dataset_name"] in NEMO_RL["datasets"]
    assert data["default"]["processor"] in NEMO_RL["processors"]
    # the overlay: NeMo-RL's own published config for this stage, merged under ours by its loader
    assert config["defaults"] == f"{rl.NEMO_RL_DIR}/{NEMO_RL['example_configs'][f'rl.{sub}']}"


def test_the_required_key_check_fails_when_a_key_is_dropped(tmp_path, gym_data):
    """Defect 1: each of these was a KeyError at NeMo-RL start-up; removing one must fail the check."""
    _, config = _config(tmp_path, "swe1", gym_data)
    for key in (
        "grpo.batch_multiplier",
        "loss_fn.kl_input_clamp_value",
        "loss_fn.kl_output_clamp_value",
        "loss_fn.truncated_importance_sampling_ratio",
        "policy.offload_optimizer_for_logprob",
        "policy.megatron_cfg.bias_activation_fusion",
        "policy.megatron_cfg.moe_per_layer_logging",
    ):
        parent, leaf = key.rsplit(".", 1)
        broken = yaml.safe_load(yaml.safe_dump(config))
        del _get(broken, parent)[leaf]
        assert _missing_required(broken, GYM_SCRIPT) == [key]


@pytest.mark.parametrize("sub", SUBSTAGES)
def test_nemo_gym_contract(tmp_path, gym_data, sub):
    """Defects 2 and 3: the checkpoint metric and NeMo-Gym's validation and data keys at the pinned tree."""
    _, c = _config(tmp_path, sub, gym_data)
    metric = c["checkpointing"]["metric_name"]
    assert metric == "val:total_reward/mean" and metric.startswith(tuple(NEMO_RL["metric_name_prefixes"]))
    assert c["grpo"]["max_val_samples"] is None  # run_grpo_nemo_gym.py raises on a non-null value
    assert c["data"]["train"] == {"data_path": str(Path(gym_data.path) / "train.jsonl")}
    assert c["data"]["validation"] == {"data_path": str(Path(gym_data.path) / "val.jsonl")}
    assert "train_jsonl_fpath" not in c["data"] and "prompt_file" not in c["data"]  # v0.5.0 keys, gone at super-v3
    assert c["env"]["should_use_nemo_gym"] and c["policy"]["generation"]["vllm_cfg"]["async_engine"] is True


@pytest.mark.parametrize(
    ("sub", "prompts", "gens", "seq", "tp", "cp", "lr", "kl", "gen_nodes", "cluster_nodes", "save", "clip"),
    [
        ("rlvr", 256, 16, 65536, 4, 8, 3e-6, 0.0, 72, 109, 10, 50),
        ("rlvr3", 256, 16, 65536, 4, 8, 3e-6, 0.0, 72, 109, 10, 50),
        ("swe1", 64, 16, 131072, 8, 8, 1e-6, 0.0, 32, 64, 5, 100),
        ("swe2", 16, 32, 196608, 8, 8, 1e-6, 0.0, 32, 64, 2, 100),
        ("rlhf", 128, 16, 49152, 4, 4, 1e-6, 1e-4, 32, 72, 4, 50),
    ],
)
def test_published_values_per_substage(
    tmp_path, gym_data, sub, prompts, gens, seq, tp, cp, lr, kl, gen_nodes, cluster_nodes, save, clip
):
    _, c = _config(tmp_path, sub, gym_data)
    g, p, m, loss = c["grpo"], c["policy"], c["policy"]["megatron_cfg"], c["loss_fn"]
    assert (g["num_prompts_per_step"], g["num_generations_per_prompt"]) == (prompts, gens)
    assert p["train_global_batch_size"] == prompts * gens and p["max_total_sequence_length"] == seq
    assert (m["tensor_model_parallel_size"], m["context_parallel_size"], m["expert_model_parallel_size"]) == (tp, cp, 8)
    assert m["optimizer"]["lr"] == m["optimizer"]["min_lr"] == lr
    assert loss["reference_policy_kl_penalty"] == kl
    assert (loss["ratio_clip_min"], loss["ratio_clip_max"]) == (0.2, 0.28)
    assert p["generation"]["colocated"] == {"enabled": False, "resources": {"gpus_per_node": 8, "num_nodes": gen_nodes}}
    assert p["generation"]["vllm_cfg"]["max_model_len"] == seq and g["async_grpo"]["enabled"] is True
    assert c["cluster"] == {"gpus_per_node": 8, "num_nodes": cluster_nodes}
    assert c["checkpointing"]["save_period"] == save and c["checkpointing"]["checkpoint_must_save_by"] == "00:03:30:00"
    assert c["checkpointing"]["checkpoint_dir"] == str(tmp_path / "out" / "checkpoints")
    assert p["model_name"] == p["tokenizer"]["name"] == str(tmp_path / "model" / "hf")
    # published keys (examples/configs/super/stage*.yaml at super-v3)
    assert (g["advantage_clip_low"], g["advantage_clip_high"]) == (-clip, clip)
    assert g["seq_logprob_error_threshold"] == 2 and loss["force_on_policy_ratio"] is True
    assert (loss["truncated_importance_sampling_type"], loss["truncated_importance_sampling_ratio"]) == ("tis", 5)
    assert g["penalize_invalid_tool_call"] and g["invalid_tool_call_advantage"] == -5.0
    assert g["penalize_malformed_thinking"] and g["malformed_thinking_advantage"] == -5.0
    serving = p["generation"]["vllm_cfg"]["http_server_serving_chat_kwargs"]
    assert (serving["tool_parser"], serving["reasoning_parser"]) == ("qwen3_coder", "nano_v3")


def test_math_environment_reads_nested_data_keys_at_the_pinned_tree(tmp_path, rl_data):
    """Defect 3, math path: super-v3's run_grpo.py reads data.train/validation/default (not top-level keys)."""
    cfg, c = _config(tmp_path, "rlvr", rl_data, **{"env.name": "math"})
    train = c["data"]["train"]
    assert train["data_path"] == str(Path(rl_data.path) / "train.jsonl")
    assert (train["input_key"], train["output_key"]) == ("prompt", "answer")
    assert c["data"]["default"]["env_name"] == "math" and "math" in c["env"]
    assert (c["grpo"]["max_val_samples"], c["grpo"]["val_batch_size"]) == (3, 3)
    assert rl.grpo_command(cfg, "c.yaml") == ["uv", "run", "python", "examples/run_grpo.py", "--config", "c.yaml"]
    assert _missing_required(c, "examples/run_grpo.py") == [] and tree_problems(c, NEMO_RL["master_config"]) == []


def test_row_format_must_match_the_entry_script(tmp_path, rl_data, gym_data):
    with pytest.raises(UserError, match="prompt_answer rows"):
        _config(tmp_path, "swe1", rl_data)
    with pytest.raises(UserError, match="nemo_gym rows"):
        _config(tmp_path, "rlvr", gym_data, **{"env.name": "math"})


def test_swe_and_rlhf_run_through_nemo_gym(tmp_path, gym_data):
    cfg, c = _config(tmp_path, "swe2", gym_data)
    assert c["env"]["should_use_nemo_gym"] and c["data"]["default"]["dataset_name"] == "NemoGymDataset"
    assert c["env"]["nemo_gym"]["config_paths"][1].endswith("swebench_openhands_training.yaml")
    assert rl.grpo_command(cfg, "c.yaml")[3] == GYM_SCRIPT
    _, h = _config(tmp_path, "rlhf", gym_data, **{"env.reward_model": "/models/genrm"})
    assert h["env"]["nemo_gym"]["num_gpu_nodes"] == 8 and h["env"]["use_genrm_compare"] is True
    assert h["env"]["nemo_gym"]["genrm_model"]["responses_api_models"]["vllm_model"]["model"] == "/models/genrm"


def test_library_config_needs_no_inputs(tmp_path):
    cfg = resolved_config("rl.rlvr2", "default", tmp_path)
    lib = rl.library_config(cfg)
    assert lib["data"]["train"]["data_path"] == "<rl-rlvr2-data:latest>/train.jsonl"
    assert lib["policy"]["model_name"] == "<rl-rlvr-model:latest>/hf"
    assert _missing_required(lib, GYM_SCRIPT) == []


def test_colocated_generation_and_config_written_as_yaml(tmp_path, rl_data):
    overrides = {"policy.generation.colocated": True, "policy.generation.nodes": 0, "env.gpu_nodes": 0}
    overrides |= {"resources.nodes": 4, "parallel.context": 1}
    _, c = _config(tmp_path, "rlvr", rl_data, **overrides, **{"env.name": "math"})
    assert c["policy"]["generation"]["colocated"]["enabled"] is True and c["grpo"]["async_grpo"]["enabled"] is False
    path = tmp_path / "grpo.yaml"
    rl.write_config(c, path)
    assert yaml.safe_load(path.read_text()) == c


def test_user_errors(tmp_path, rl_data):
    cfg = resolved_config("rl.rlvr", "default", tmp_path, **{"env.name": "math"})
    with pytest.raises(UserError, match="no Hugging Face export"):
        rl.build_grpo_config(cfg, {"model": megatron_model(tmp_path / "m"), "data": rl_data}, tmp_path / "out")
    with pytest.raises(UserError, match="must equal"):
        _config(tmp_path, "rlvr", rl_data, **{"policy.train_global_batch_size": 1024, "env.name": "math"})
    with pytest.raises(UserError, match="val.jsonl"):
        (Path(rl_data.path) / "val.jsonl").unlink()
        _config(tmp_path, "rlvr", rl_data, **{"env.name": "math"})
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

    cfg = resolved_config("rl.rlvr", "default", tmp_path, **{"env.name": "math"})
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


def test_reference_is_read_at_the_tree_the_rl_container_ships():
    """One version per library: nemo_rl.json, the RL stage configs' container and pins.py agree."""
    from nemotron.pipeline.stages import BY_NAME
    from nemotron.upstream.pins import container

    for sub in SUBSTAGES:
        image = resolved_config(f"rl.{sub}", "default")["resources"]["container"]
        pin = container(image).pin("nemo-rl")
        assert pin.tag == NEMO_RL["ref"] and pin.version in NEMO_RL["version"]
        assert container(image).pin("nemo-gym").tag == NEMO_RL["nemo_gym_row"]["ref"]
    assert container(BY_NAME["rl.rlvr"].container).pin("nemo-rl").tag == NEMO_RL["ref"]
    for source in NEMO_RL["sources"].values():
        if source.get("repo") == "NVIDIA-NeMo/RL":
            assert f"{source['branch']}@{source['commit']}" == NEMO_RL["ref"]


def test_preflight_checks_the_nemo_rl_checkout(tmp_path):
    cfg = resolved_config("rl.swe1", "default", tmp_path)
    root = tmp_path / "nemo-rl"
    with pytest.raises(UserError, match="not found"):
        rl.preflight(cfg, root)
    (root / "nemo_rl").mkdir(parents=True)
    info = 'MAJOR = 0\nMINOR = 5\nPATCH = 0\nPRE_RELEASE = "{}"\n'
    (root / "nemo_rl" / "package_info.py").write_text(info.format(""))
    with pytest.raises(UserError, match="is 0.5.0, but"):  # the v0.5.0 release is not the super-v3 tree
        rl.preflight(cfg, root)
    (root / "nemo_rl" / "package_info.py").write_text(info.format("rc0"))
    with pytest.raises(UserError, match="stage2_swe1.yaml"):
        rl.preflight(cfg, root)
    base = root / "examples" / "configs" / "super" / "stage2_swe1.yaml"
    base.parent.mkdir(parents=True)
    base.write_text("grpo: {}\n")
    rl.preflight(cfg, root)


def test_dry_run_prints_the_nemo_rl_config_and_writes_library_yaml(tmp_path, monkeypatch, capsys):
    """`super3 rl <stage> --dry-run`: library.yaml in the job dir holds every key NeMo-RL reads unconditionally."""
    from tests.cli.conftest import run_cli

    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    (tmp_path / "env.toml").write_text("")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    code, out, err = run_cli(["super3", "rl", "rlhf", "--dry-run"], capsys)
    assert code == 0, err
    (library,) = (tmp_path / "home" / "jobs").glob("*/rl.rlhf/library.yaml")
    config = yaml.safe_load(library.read_text())
    assert _missing_required(config, GYM_SCRIPT) == [] and tree_problems(config, NEMO_RL["master_config"]) == []
    assert config["data"]["train"]["data_path"] == "<rl-rlhf-data:latest>/train.jsonl"
    assert "library.yaml" in out and "val:total_reward/mean" in out
