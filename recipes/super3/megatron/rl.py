"""RL (rlvr, rlvr2, rlvr3, swe1, swe2, rlhf): NeMo-RL GRPO with a Megatron policy and vLLM generation, on Ray.

``grpo_config`` turns train.yaml into NeMo-RL's GRPO master config. It is an overlay: the file starts
with ``defaults: <NeMo-RL checkout>/examples/configs/super/<stage>.yaml`` (NeMo-RL's own published
config for the stage, merged under ours by NeMo-RL's config loader, ``nemo_rl/utils/config.py``), and
also carries every key NeMo-RL reads without a default (``api_reference/nemo_rl.json`` ``required``),
so the file is complete on its own and ``library.yaml`` in the dry run shows what NeMo-RL will read.
Facts are from NeMo-RL's super-v3 tree, the one the RL container ships (``nemotron.upstream.pins``).

The job runs under ``ray_launch.sh`` (Ray head on node 0, workers elsewhere); on the head this module
writes the config, runs NeMo-RL's GRPO entry script, then converts the last checkpoint to HF.
NeMo-RL resumes from the newest ``step_N`` in the checkpoint directory, so a requeued job continues.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from super3.megatron.common import locate_model, require

NEMO_RL_DIR = os.environ.get("NEMO_RL_DIR", "/opt/nemo-rl")
"""Where the NeMo-RL checkout lives in the nemo-rl container (the published runspec's workdir)."""

# Entry scripts at NeMo-RL super-v3 (api_reference/nemo_rl.json "scripts"): run_grpo_math.py of v0.5.0
# is gone there; the generic examples/run_grpo.py runs the math environment.
MATH_SCRIPT = "examples/run_grpo.py"
GYM_SCRIPT = "examples/nemo_gym/run_grpo_nemo_gym.py"
CONVERTER = "examples/converters/convert_megatron_to_hf.py"
CONFIG_NAME = "grpo_config.yaml"
METRIC_NAME = "val:total_reward/mean"  # published (examples/configs/super/stage*.yaml); must start val: or train:

# NeMo-RL's published config each stage overlays (api_reference/nemo_rl.json "example_configs").
EXAMPLE_CONFIGS = {
    "rl.rlvr": "examples/configs/super/stage1_rlvr.yaml",
    "rl.rlvr2": "examples/configs/super/stage1_rlvr.yaml",
    "rl.rlvr3": "examples/configs/super/stage1_rlvr.yaml",
    "rl.swe1": "examples/configs/super/stage2_swe1.yaml",
    "rl.swe2": "examples/configs/super/stage2_swe2.yaml",
    "rl.rlhf": "examples/configs/super/stage3_rlhf.yaml",
}
MATH_EXAMPLE_CONFIG = "examples/configs/grpo_math_1B.yaml"

# NeMo-Gym environments of the published Super3 stages (examples/configs/super/*.yaml env.nemo_gym.config_paths
# at NeMo-RL super-v3); the judge/GenRM server settings under env.nemo_gym come from the overlaid example.
_VLLM_MODEL = "responses_api_models/vllm_model/configs/vllm_model_for_training.yaml"
_RLVR_ENVS = [
    _VLLM_MODEL,
    *(
        f"resources_servers/{path}.yaml"
        for path in (
            "math_with_judge/configs/math_with_judge",
            "code_gen/configs/code_gen",
            "workplace_assistant/configs/workplace_assistant",
            "mcqa/configs/mcqa",
            "instruction_following/configs/instruction_following",
            "structured_outputs/configs/structured_outputs_json",
            "equivalence_llm_judge/configs/lc_judge",
            "calendar/configs/calendar",
            "genrm_compare/configs/genrm_compare",
            "equivalence_llm_judge/configs/nl2bash-equivalency",
            "equivalence_llm_judge/configs/equivalence_llm_judge",
            "single_step_tool_use_with_argument_comparison/configs/single_step_tool_use_with_argument_comparison",
            "reasoning_gym/configs/reasoning_gym",
            "terminal_pivot/configs/terminal_pivot",
            "ns_tools/configs/ns_tools",
            "math_formal_lean/configs/math_formal_lean_multi_turn",
            "swerl_gen/configs/swerl_gen",
            "jailbreak_detection/configs/jailbreak_detection_nemotron_combined_reward_tp8",
            "over_refusal_detection/configs/over_refusal_detection_nemotron_tp8",
            "multichallenge/configs/multichallenge",
            "inverse_if/configs/inverse_if",
            "single_step_tool_use_with_argument_comparison/configs/search_pivot_single_step_tool_use_with_argument_comparison",
            "single_step_tool_use_with_argument_comparison/configs/toolcall_schema_single_step_tool_use_with_argument_comparison",
        )
    ),
]
GYM_CONFIG_PATHS = {
    "rl.rlvr": _RLVR_ENVS,
    "rl.rlvr2": _RLVR_ENVS,
    "rl.rlvr3": _RLVR_ENVS,
    "rl.swe1": [
        _VLLM_MODEL,
        "resources_servers/single_step_tool_use_with_argument_comparison/configs/"
        "swe_pivot_single_step_tool_use_with_argument_comparison.yaml",
    ],
    "rl.swe2": [_VLLM_MODEL, "responses_api_agents/swe_agents/configs/swebench_openhands_training.yaml"],
    "rl.rlhf": [
        _VLLM_MODEL,
        "resources_servers/genrm_compare/configs/genrm_compare.yaml",
        "resources_servers/single_step_tool_use_with_argument_comparison/configs/"
        "single_step_tool_use_with_argument_comparison.yaml",
    ],
}


def uses_gym(train_cfg: dict[str, Any]) -> bool:
    """math runs NeMo-RL's built-in math environment; swe / reward_model run through NeMo-Gym."""
    return train_cfg["env"]["name"] != "math"


def must_save_by(slurm_time: str, margin_minutes: int = 30) -> str:
    """``checkpointing.checkpoint_must_save_by`` (DD:HH:MM:SS): the time limit minus a margin to save."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?", slurm_time)
    if not match:
        raise UserError(f"resources.time '{slurm_time}' is not a Slurm time limit")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = max(60, ((days * 24 + hours) * 60 + minutes - margin_minutes) * 60 + seconds)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d:02d}:{h:02d}:{m:02d}:{s:02d}"


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def rl_data_files(data_dir: str | Path) -> tuple[Path, Path]:
    base = Path(data_dir)
    train, val = base / "train.jsonl", base / "val.jsonl"
    for path in (train, val):
        if not path.is_file():
            raise UserError(
                f"the rl-data artifact has no {path.name} at {base}", hint="re-run `nemotron super3 data prep rl`"
            )
    return train, val


def _megatron_cfg(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """``policy.megatron_cfg``: parallelism from train.yaml, the rest the published Super3 values."""
    par, policy = train_cfg["parallel"], train_cfg["policy"]
    lr = policy["lr"]
    return {
        "enabled": True,
        "empty_unused_memory_level": 1,
        "activation_checkpointing": True,
        "tensor_model_parallel_size": par["tensor"],
        "expert_tensor_parallel_size": par["expert_tensor"],
        "expert_model_parallel_size": par["expert"],
        "pipeline_model_parallel_size": par["pipeline"],
        "num_layers_in_first_pipeline_stage": None,
        "num_layers_in_last_pipeline_stage": None,
        "context_parallel_size": par["context"],
        "pipeline_dtype": "bfloat16",
        "sequence_parallel": bool(par["sequence_parallel"]),
        "freeze_moe_router": True,
        "moe_router_dtype": "fp32",
        "moe_router_load_balancing_type": "none",
        "moe_router_bias_update_rate": 1.0e-3,
        "moe_permute_fusion": True,
        "moe_enable_deepep": False,
        "moe_token_dispatcher_type": "alltoall",
        "moe_aux_loss_coeff": 0.0,
        "moe_router_enable_expert_bias": True,
        "moe_shared_expert_overlap": False,
        "apply_rope_fusion": True,
        "bias_activation_fusion": False,  # published False (read unconditionally by megatron/setup.py)
        "defer_fp32_logits": True,
        "track_moe_metrics": True,
        "moe_per_layer_logging": True,  # read unconditionally by the megatron policy worker
        "do_not_average_loss": True,
        "cp_normalize": True,
        "calculate_per_token_loss": True,
        "scale_loss_by_dp_cp_size": False,
        "mtp_loss_scaling_factor": 0.0,  # published: no MTP loss during RL
        "mtp_use_repeated_layer": True,
        "mtp_num_layers": 0,
        "mtp_detach_heads": True,
        "optimizer": {
            "optimizer": "adam",
            "lr": lr,
            "min_lr": lr,  # constant schedule
            "weight_decay": 0.0,
            "bf16": True,
            "fp16": False,
            "params_dtype": "float32",
            "adam_beta1": 0.9,
            "adam_beta2": 0.999,
            "adam_eps": 1e-8,
            "sgd_momentum": 0.9,
            "use_distributed_optimizer": True,
            "use_precision_aware_optimizer": True,
            "clip_grad": 1.0,
            "optimizer_cpu_offload": False,
            "optimizer_offload_fraction": 0.0,
        },
        "scheduler": {
            "start_weight_decay": 0.0,
            "end_weight_decay": 0.0,
            "weight_decay_incr_style": "constant",
            "lr_decay_style": "constant",
            "lr_decay_iters": None,
            "lr_warmup_iters": 10,
            "lr_warmup_init": 3e-7,
        },
        "distributed_data_parallel_config": {
            "grad_reduce_in_fp32": False,
            "overlap_grad_reduce": False,
            "overlap_param_gather": True,
            "average_in_collective": False,
            "use_custom_fsdp": False,
            "data_parallel_sharding_strategy": "optim_grads_params",
        },
        "fp8_cfg": {"enabled": False, "fp8": "e4m3", "fp8_recipe": "blockwise", "fp8_param": False},
        "env_vars": None,
    }


def _serving_chat_kwargs(gen: dict[str, Any]) -> dict[str, Any] | None:
    """vLLM's OpenAI chat server settings NeMo-Gym's tool and reasoning environments rely on."""
    if not (gen.get("tool_parser") or gen.get("reasoning_parser")):
        return None
    kwargs: dict[str, Any] = {}
    if gen.get("tool_parser"):
        kwargs.update({"enable_auto_tools": True, "tool_parser": gen["tool_parser"]})
    if gen.get("reasoning_parser"):
        kwargs["reasoning_parser"] = gen["reasoning_parser"]
    if gen.get("reasoning_parser_plugin"):
        kwargs["reasoning_parser_plugin"] = gen["reasoning_parser_plugin"]
    return kwargs


def _generation(train_cfg: dict[str, Any], gpus_per_node: int) -> dict[str, Any]:
    gen, seq = train_cfg["policy"]["generation"], train_cfg["policy"]["max_total_sequence_length"]
    colocated = bool(gen["colocated"])
    if not colocated and gen["nodes"] < 1:
        raise UserError("policy.generation.colocated=false needs policy.generation.nodes >= 1")
    vllm_cfg: dict[str, Any] = {
        "async_engine": not colocated or uses_gym(train_cfg),  # NeMo-Gym needs the async engine
        "precision": "bfloat16",
        "kv_cache_dtype": "auto",
        "tensor_parallel_size": gen["tensor_parallel"],
        "pipeline_parallel_size": 1,
        "expert_parallel_size": 1,
        "gpu_memory_utilization": 0.8,
        "max_model_len": seq,
        "enforce_eager": False,
        "use_deep_gemm": False,
        "num_last_layers_in_bf16": 0,
        "num_first_layers_in_bf16": 0,
        "enable_vllm_metrics_logger": True,
        "vllm_metrics_logger_interval": 0.5,
        "expose_http_server": uses_gym(train_cfg),
        "skip_tokenizer_init": False,
    }
    serving = _serving_chat_kwargs(gen)
    if serving:
        vllm_cfg["http_server_serving_chat_kwargs"] = serving
    return {
        "backend": gen["backend"],
        "max_new_tokens": gen["max_new_tokens"],
        "temperature": gen["temperature"],
        "top_p": gen["top_p"],
        "top_k": None,
        "stop_token_ids": None,
        "stop_strings": None,
        "vllm_cfg": vllm_cfg,
        "vllm_kwargs": {"mamba_ssm_cache_dtype": "float32"},  # published: Mamba state cache in fp32
        "colocated": {
            "enabled": colocated,
            "resources": {
                "gpus_per_node": None if colocated else gpus_per_node,
                "num_nodes": None if colocated else gen["nodes"],
            },
        },
    }


def _grpo_section(train_cfg: dict[str, Any], gym: bool, n_val: int | None) -> dict[str, Any]:
    grpo, gen = train_cfg["grpo"], train_cfg["policy"]["generation"]
    clip = grpo["advantage_clip"]
    section: dict[str, Any] = {
        "num_prompts_per_step": grpo["num_prompts_per_step"],
        "num_generations_per_prompt": grpo["num_generations_per_prompt"],
        "num_val_generations_per_prompt": grpo["num_val_generations_per_prompt"],
        "max_rollout_turns": 1,
        "max_num_epochs": grpo["max_num_epochs"],
        "max_num_steps": grpo["max_num_steps"],
        "normalize_rewards": grpo["normalize_rewards"],
        "use_leave_one_out_baseline": grpo["use_leave_one_out_baseline"],
        "advantage_clip_low": -clip if clip else None,
        "advantage_clip_high": clip,
        "val_period": grpo["val_period"],
        "val_at_start": False,
        "val_at_end": False,
        "overlong_filtering": False,
        # run_grpo_nemo_gym.py refuses a non-null value and sets it to the validation set's size itself
        "max_val_samples": None if gym else n_val,
        "val_batch_size": 256 if gym or n_val is None else min(256, n_val),
        "seed": train_cfg["seed"],
        "use_dynamic_sampling": False,
        "dynamic_sampling_max_gen_batches": 10,
        "batch_multiplier": 1,  # read unconditionally by grpo.setup
        "penalize_invalid_tool_call": grpo["invalid_tool_call_advantage"] is not None,
        "invalid_tool_call_advantage": grpo["invalid_tool_call_advantage"] or 0.0,
        "penalize_malformed_thinking": grpo["malformed_thinking_advantage"] is not None,
        "malformed_thinking_advantage": grpo["malformed_thinking_advantage"] or 0.0,
        "reward_shaping": {"enabled": False},
        "reward_scaling": {"enabled": False},
        "async_grpo": {
            "enabled": not gen["colocated"],
            "max_trajectory_age_steps": 1,
            "in_flight_weight_updates": True,
            "recompute_kv_cache_after_weight_updates": False,
        },
        "seq_logprob_error_threshold": grpo["seq_logprob_error_threshold"],
    }
    return section


def _loss_section(grpo: dict[str, Any]) -> dict[str, Any]:
    return {
        "reference_policy_kl_penalty": grpo["kl_coef"],
        "reference_policy_kl_type": "k3",
        "kl_input_clamp_value": None,
        "kl_output_clamp_value": None,
        "ratio_clip_min": grpo["clip_eps"],
        "ratio_clip_max": grpo["clip_eps_high"] or grpo["clip_eps"],
        "ratio_clip_c": None,
        "use_on_policy_kl_approximation": True,
        "use_importance_sampling_correction": True,
        "truncated_importance_sampling_ratio": grpo["truncated_is_ratio"],
        "truncated_importance_sampling_ratio_min": None,
        "truncated_importance_sampling_type": grpo["truncated_is_type"],
        "sequence_level_importance_ratios": False,
        "token_level_loss": True,
        "force_on_policy_ratio": grpo["force_on_policy_ratio"],
        "use_kl_in_reward": False,
    }


def _data_section(train_cfg: dict[str, Any], gym: bool, train_file: str, val_file: str) -> dict[str, Any]:
    """``data``: at NeMo-RL super-v3 both entry scripts read ``data.train`` / ``data.validation`` /
    ``data.default`` (``nemo_rl/data/utils.py`` setup_response_data); v0.5.0's top-level keys
    (``train_jsonl_fpath``, ``prompt_file``, ``dataset_name``) are gone there."""
    seq = train_cfg["policy"]["max_total_sequence_length"]
    if gym:
        default = {"dataset_name": "NemoGymDataset", "env_name": "nemo_gym", "processor": "nemo_gym_data_processor"}
        train, validation = {"data_path": train_file}, {"data_path": val_file}
    else:
        default = {"dataset_name": "ResponseDataset", "env_name": "math", "processor": "math_hf_data_processor"}
        keys = {"input_key": "prompt", "output_key": "answer"}
        train, validation = {"data_path": train_file, **keys}, {"data_path": val_file, **keys}
    return {
        "max_input_seq_length": None if gym else seq,
        "shuffle": not gym,
        "num_workers": 1,
        "train": train,
        "validation": validation,
        "default": {**default, "prompt_file": None, "system_prompt_file": None},
    }


def _env_section(train_cfg: dict[str, Any], gym: bool) -> dict[str, Any]:
    env = train_cfg["env"]
    if not gym:
        return {"math": {"num_workers": 8, "math_verify_impl": "hf_math_verify"}}
    stage = str((train_cfg.get("job") or {}).get("stage") or "")
    section: dict[str, Any] = {
        "should_use_nemo_gym": True,
        "nemo_gym": {
            "skip_venv_if_present": True,
            "num_gpu_nodes": env["gpu_nodes"],
            "config_paths": list(GYM_CONFIG_PATHS.get(stage, [])),
        },
    }
    if env["name"] == "reward_model":
        section["use_genrm_compare"] = True
    if env.get("reward_model"):
        section["nemo_gym"]["genrm_model"] = {"responses_api_models": {"vllm_model": {"model": env["reward_model"]}}}
    return section


def example_config(train_cfg: dict[str, Any]) -> str:
    """NeMo-RL's own config this stage overlays (path inside the NeMo-RL checkout)."""
    if not uses_gym(train_cfg):
        return MATH_EXAMPLE_CONFIG
    stage = str((train_cfg.get("job") or {}).get("stage") or "rl.rlvr")
    return EXAMPLE_CONFIGS.get(stage, EXAMPLE_CONFIGS["rl.rlvr"])


def grpo_config(
    train_cfg: dict[str, Any],
    model_hf: str,
    train_file: str,
    val_file: str,
    output_dir: str | Path,
    n_val: int | None = None,
) -> dict[str, Any]:
    """The NeMo-RL GRPO master config (pure: paths are given, nothing is read)."""
    output_dir = Path(output_dir)
    grpo, policy, env, res = train_cfg["grpo"], train_cfg["policy"], train_cfg["env"], train_cfg["resources"]
    gbs = grpo["num_prompts_per_step"] * grpo["num_generations_per_prompt"]
    if policy["train_global_batch_size"] != gbs:
        raise UserError(
            f"policy.train_global_batch_size ({policy['train_global_batch_size']}) must equal "
            f"num_prompts_per_step x num_generations_per_prompt ({gbs})",
            hint="GRPO trains on every rollout of a step once",
        )
    seq, gpus = policy["max_total_sequence_length"], res["gpus_per_node"]
    gym = uses_gym(train_cfg)
    job = train_cfg.get("job") or {}
    wandb = job.get("wandb") or train_cfg.get("wandb") or {}
    use_wandb = bool(train_cfg["logging"]["wandb"] and wandb.get("project") and wandb.get("mode") != "disabled")
    return {
        # overlay: NeMo-RL's loader merges our keys over its own published config for this stage
        "defaults": f"{NEMO_RL_DIR}/{example_config(train_cfg)}",
        "grpo": _grpo_section(train_cfg, gym, n_val),
        "loss_fn": _loss_section(grpo),
        "checkpointing": {
            "enabled": True,
            "checkpoint_dir": str(output_dir / "checkpoints"),
            "metric_name": METRIC_NAME,
            "higher_is_better": True,
            "keep_top_k": 1000000,
            "save_period": train_cfg["checkpoint"]["save_interval"],
            "checkpoint_must_save_by": must_save_by(res["time"]),
            "model_save_format": "safetensors",
            "save_consolidated": False,
        },
        "policy": {
            "model_name": model_hf,
            "tokenizer": {"name": model_hf, "chat_template_kwargs": None},
            "hf_config_overrides": {},
            "train_global_batch_size": gbs,
            "train_micro_batch_size": policy["train_micro_batch_size"],
            "generation_batch_size": 64,
            "logprob_batch_size": 1,
            "max_total_sequence_length": seq,
            "precision": "bfloat16",
            "logprob_chunk_size": 2048,
            "offload_optimizer_for_logprob": False,
            "dtensor_cfg": {"enabled": False},
            "megatron_cfg": _megatron_cfg(train_cfg),
            "dynamic_batching": {"enabled": False},
            "sequence_packing": {
                "enabled": True,
                "train_mb_tokens": seq * policy["train_micro_batch_size"],
                "logprob_mb_tokens": seq,
                "algorithm": "modified_first_fit_decreasing",
                "sequence_length_round": 64,
            },
            "make_sequence_length_divisible_by": train_cfg["parallel"]["tensor"],
            "max_grad_norm": 1.0,
            "optimizer": None,
            "scheduler": None,
            "generation": _generation(train_cfg, gpus),
        },
        "data": _data_section(train_cfg, gym, train_file, val_file),
        "env": _env_section(train_cfg, gym),
        "logger": {
            "log_dir": str(output_dir / "logs"),
            "num_val_samples_to_print": 0,
            "wandb_enabled": use_wandb,
            "tensorboard_enabled": False,
            "mlflow_enabled": False,
            "swanlab_enabled": False,
            "monitor_gpus": True,
            "wandb": {"project": wandb.get("project"), "name": job.get("id") or job.get("stage")},
            "tensorboard": {},
            "gpu_monitoring": {"collection_interval": 10, "flush_interval": 10},
        },
        "cluster": {
            "gpus_per_node": gpus,
            # NeMo-Gym subtracts its own GPU nodes; the math environment needs none of the reserved nodes.
            "num_nodes": res["nodes"] if gym else res["nodes"] - env["gpu_nodes"],
        },
    }


def _check_data_format(train_cfg: dict[str, Any], data: Any) -> None:
    """The entry script reads one row format: NeMo-Gym rows for NeMo-Gym, prompt/answer for math."""
    want = "nemo_gym" if uses_gym(train_cfg) else "prompt_answer"
    have = (getattr(data, "metadata", None) or {}).get("row_format", "prompt_answer")
    if have != want:
        raise UserError(
            f"run.data {data.name}:v{data.version} holds {have} rows, but env.name={train_cfg['env']['name']} reads {want}",
            hint="prepare the data with the matching `data prep rl -c <stage>` config (data.format)",
        )


def build_grpo_config(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """The NeMo-RL GRPO master config for this train.yaml and these resolved inputs."""
    for slot in ("model", "data"):
        if slot not in inputs:
            raise UserError(f"RL needs run.{slot}")
    hf = locate_model(inputs["model"]).hf
    if hf is None:
        model = inputs["model"]
        raise UserError(
            f"run.model {model.name}:v{model.version} has no Hugging Face export",
            hint="NeMo-RL loads the policy from HF; use an SFT or RL model (export.hf=true)",
        )
    _check_data_format(train_cfg, inputs["data"])
    train_file, val_file = rl_data_files(inputs["data"].path)
    return grpo_config(train_cfg, str(hf), str(train_file), str(val_file), output_dir, _count_lines(val_file))


def library_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """The NeMo-RL config for the dry run (``library.yaml``): inputs shown as the references they resolve from."""
    run = train_cfg.get("run") or {}
    job = train_cfg.get("job") or {}
    output_dir = job.get("output_dir") or "<output_dir>"
    data = f"<{run.get('data')}>"
    return grpo_config(train_cfg, f"<{run.get('model')}>/hf", f"{data}/train.jsonl", f"{data}/val.jsonl", output_dir)


def grpo_command(train_cfg: dict[str, Any], config_path: str | Path) -> list[str]:
    """The NeMo-RL command the Ray head runs (cwd: ``NEMO_RL_DIR``)."""
    script = GYM_SCRIPT if uses_gym(train_cfg) else MATH_SCRIPT
    return ["uv", "run", "python", script, "--config", str(config_path)]


def convert_command(step_dir: str | Path, weights_dir: str | Path, hf_dir: str | Path) -> list[str]:
    """NeMo-RL's Megatron -> HF converter for one saved step (needs the ``mcore`` extra)."""
    return [
        "uv", "run", "--extra", "mcore", "python", CONVERTER,
        "--config", str(Path(step_dir) / "config.yaml"),
        "--megatron-ckpt-path", str(weights_dir),
        "--hf-ckpt-path", str(hf_dir),
    ]  # fmt: skip


def inner_commands(train_cfg: dict[str, Any], output_dir: str | Path) -> list[list[str]]:
    """What the entry script runs, for the dry-run (the step is only known after training)."""
    output_dir = Path(output_dir)
    step = output_dir / "checkpoints" / "step_<last>"
    return [
        grpo_command(train_cfg, output_dir / CONFIG_NAME),
        convert_command(step, step / "policy" / "weights" / "iter_<last>", output_dir / "hf.tmp"),
    ]


def latest_step(checkpoint_dir: str | Path) -> tuple[int, Path] | None:
    """The newest ``step_N`` directory NeMo-RL saved, or ``None``."""
    steps = []
    for path in Path(checkpoint_dir).glob("step_*"):
        match = re.fullmatch(r"step_(\d+)", path.name)
        if match and path.is_dir():
            steps.append((int(match.group(1)), path))
    return max(steps) if steps else None


def megatron_weights(step_dir: Path) -> Path:
    """``step_N/policy/weights`` or its newest ``iter_*`` sub-directory."""
    weights = step_dir / "policy" / "weights"
    iters = sorted(p for p in weights.glob("iter_*") if p.is_dir())
    return iters[-1] if iters else weights


def write_config(config: dict[str, Any], path: Path) -> None:
    import yaml

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    os.replace(tmp, path)


def nemo_rl_version(nemo_rl_dir: str | Path) -> str | None:
    """The version string of a NeMo-RL checkout (``nemo_rl/package_info.py``: MAJOR.MINOR.PATCH + PRE_RELEASE)."""
    path = Path(nemo_rl_dir) / "nemo_rl" / "package_info.py"
    if not path.is_file():
        return None
    text = path.read_text()
    parts = {k: re.search(rf'^{k}\s*=\s*"?([^"\n]*)"?', text, re.M) for k in ("MAJOR", "MINOR", "PATCH", "PRE_RELEASE")}
    if not all(parts[k] for k in ("MAJOR", "MINOR", "PATCH")):
        return None
    pre = parts["PRE_RELEASE"].group(1).strip() if parts["PRE_RELEASE"] else ""
    return ".".join(parts[k].group(1).strip() for k in ("MAJOR", "MINOR", "PATCH")) + pre


def preflight(train_cfg: dict[str, Any], nemo_rl_dir: str | Path = NEMO_RL_DIR) -> None:
    """Before Ray starts GRPO: the checkout is the NeMo-RL tree our config was checked against."""
    from nemotron.upstream.pins import container

    root = Path(nemo_rl_dir)
    if not root.is_dir():
        raise UserError(
            f"NeMo-RL checkout not found at {root}",
            hint="run RL in the nemo-rl container (resources.container) or set NEMO_RL_DIR",
        )
    image = train_cfg["resources"].get("container") or ""
    try:
        pin = container(image).pin("nemo-rl")
    except KeyError:
        get_logger().warning("no pinned NeMo-RL version for container %r; not checking the checkout", image)
        return
    found = nemo_rl_version(root)
    if found != pin.version:
        raise UserError(
            f"NeMo-RL at {root} is {found or 'of unknown version'}, but this config was checked against "
            f"{pin.version} ({pin.repo} {pin.tag})",
            hint=f"use the container {image} or update the pin and api_reference/nemo_rl.json together",
        )
    base = root / example_config(train_cfg)
    if not base.is_file():
        raise UserError(
            f"NeMo-RL at {root} has no {example_config(train_cfg)} to overlay",
            hint=f"the RL stages need NeMo-RL's {pin.tag.split('@')[0]} tree ({image})",
        )


def _launch(train_cfg: dict[str, Any], config_path: Path, output_dir: Path) -> None:
    """Run NeMo-RL GRPO on the Ray cluster, then convert the last checkpoint to HF (Ray head only)."""
    preflight(train_cfg)
    require("ray", "Ray")
    log = get_logger()
    cmd = grpo_command(train_cfg, config_path)
    log.info("running %s (cwd %s)", " ".join(cmd), NEMO_RL_DIR)
    subprocess.run(cmd, cwd=NEMO_RL_DIR, check=True)
    last = latest_step(output_dir / "checkpoints")
    if last is None:
        raise RuntimeError(f"GRPO ended without a checkpoint in {output_dir / 'checkpoints'}; nothing to publish")
    hf_dir, tmp = output_dir / "hf", output_dir / "hf.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    conv = convert_command(last[1], megatron_weights(last[1]), tmp)
    log.info("converting step %d to HF: %s", last[0], " ".join(conv))
    subprocess.run(conv, cwd=NEMO_RL_DIR, check=True)
    shutil.rmtree(hf_dir, ignore_errors=True)
    tmp.rename(hf_dir)


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.rl``), run on the Ray head by ``ray_launch.sh``."""
    output_dir = Path(output_dir)
    config = build_grpo_config(train_cfg, inputs, output_dir)
    config_path = output_dir / CONFIG_NAME
    write_config(config, config_path)
    get_logger().info("NeMo-RL GRPO config written to %s", config_path)
    _launch(train_cfg, config_path, output_dir)
    step = latest_step(output_dir / "checkpoints")
    return {
        "format": "hf",
        "library": "nemo-rl",
        "algorithm": "grpo",
        "environment": train_cfg["env"]["name"],
        "hf_dir": "hf",
        "step": step[0] if step else None,
        "grpo_config": CONFIG_NAME,
    }
