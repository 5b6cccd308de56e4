"""Schema for the NeMo-RL GRPO stages (rlvr, swe1, swe2, rlhf)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from nemotron.config.schemas.common import StageConfig, Strict
from nemotron.config.schemas.training import CheckpointSection, ModelSection, ParallelSection


class GrpoSection(Strict):
    num_prompts_per_step: PositiveInt = 256
    num_generations_per_prompt: PositiveInt = 16
    max_num_steps: PositiveInt = 100
    max_num_epochs: PositiveInt = 1  # passes over the prompts; training stops at whichever limit comes first
    val_period: int = Field(10, ge=0)
    normalize_rewards: bool = True
    use_leave_one_out_baseline: bool = True
    kl_coef: float = Field(0.0, ge=0)
    clip_eps: float = Field(0.2, gt=0)
    clip_eps_high: float | None = Field(None, gt=0)  # asymmetric upper ratio clip; null = clip_eps
    num_val_generations_per_prompt: PositiveInt = 1
    advantage_clip: float | None = Field(None, gt=0)  # clip normalized advantages to [-v, v]; null = off
    seq_logprob_error_threshold: float | None = Field(None, gt=0)  # mask sequences whose logprob mismatch exceeds it
    force_on_policy_ratio: bool = False  # ratio = 1 (one optimizer step per rollout batch)
    truncated_is_ratio: float | None = Field(None, gt=0)  # truncated importance sampling cap; null = off
    truncated_is_type: Literal["tis", "icepop"] = "tis"
    invalid_tool_call_advantage: float | None = None  # advantage on malformed tool-call tokens; null = no penalty
    malformed_thinking_advantage: float | None = None  # advantage on malformed <think> tokens; null = no penalty


class GenerationSection(Strict):
    backend: Literal["vllm", "hf"] = "vllm"
    max_new_tokens: PositiveInt = 16384
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    tensor_parallel: PositiveInt = 4
    colocated: bool = True  # generation shares the training GPUs; false = dedicated generation nodes
    nodes: NonNegativeInt = 0  # dedicated generation nodes when colocated is false
    tool_parser: str | None = None  # vLLM chat serving: --tool-call-parser (NeMo-Gym tool environments)
    reasoning_parser: str | None = None  # vLLM chat serving: --reasoning-parser
    reasoning_parser_plugin: str | None = None  # path inside the NeMo-RL checkout of a custom reasoning parser


class PolicySection(Strict):
    max_total_sequence_length: PositiveInt = 32768
    train_global_batch_size: PositiveInt = 4096
    train_micro_batch_size: PositiveInt = 1
    lr: PositiveFloat = 1e-6
    generation: GenerationSection = Field(default_factory=GenerationSection)


class EnvSection(Strict):
    """The reward environment.

    ``math``: NeMo-RL's built-in math verifier over ``{prompt, answer}`` rows (``examples/run_grpo.py``).
    Every other name runs NeMo-Gym (``run_grpo_nemo_gym.py``) over NeMo-Gym rows whose ``agent_ref``
    picks the environment per row: ``multi`` (the RLVR blends), ``swe``, ``reward_model`` (RLHF GenRM).
    """

    name: Literal["math", "multi", "code", "swe", "reward_model"] = "math"
    reward_model: str | None = None
    gpu_nodes: NonNegativeInt = 0  # nodes reserved for the environment's GPU servers (judges, reward model)


class RlConfig(StageConfig):
    algorithm: Literal["grpo"] = "grpo"
    model: ModelSection = Field(default_factory=ModelSection)
    grpo: GrpoSection = Field(default_factory=GrpoSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    env: EnvSection = Field(default_factory=EnvSection)
    parallel: ParallelSection = Field(default_factory=ParallelSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
