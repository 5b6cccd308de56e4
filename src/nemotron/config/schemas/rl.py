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


class GenerationSection(Strict):
    backend: Literal["vllm", "hf"] = "vllm"
    max_new_tokens: PositiveInt = 16384
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    tensor_parallel: PositiveInt = 4
    colocated: bool = True  # generation shares the training GPUs; false = dedicated generation nodes
    nodes: NonNegativeInt = 0  # dedicated generation nodes when colocated is false


class PolicySection(Strict):
    max_total_sequence_length: PositiveInt = 32768
    train_global_batch_size: PositiveInt = 4096
    train_micro_batch_size: PositiveInt = 1
    lr: PositiveFloat = 1e-6
    generation: GenerationSection = Field(default_factory=GenerationSection)


class EnvSection(Strict):
    """The reward environment: math (verifiable answers), code/swe (tests), reward_model (RLHF)."""

    name: Literal["math", "code", "swe", "reward_model"] = "math"
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
