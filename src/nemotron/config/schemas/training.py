"""Schemas for the Megatron-Bridge training stages (pretrain, SFT) and the sections they share with
quantize/RL (model architecture, parallelism, precision)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from nemotron.config.schemas.common import StageConfig, Strict


class ModelSection(Strict):
    """Architecture numbers (Megatron names). Defaults are Nemotron 3 Super; tiny configs shrink them."""

    num_layers: PositiveInt = 88
    hybrid_pattern: str = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"
    hidden_size: PositiveInt = 4096
    num_attention_heads: PositiveInt = 32
    num_query_groups: PositiveInt = 2
    kv_channels: PositiveInt = 128
    mamba_num_heads: PositiveInt = 128
    mamba_head_dim: PositiveInt = 64
    mamba_state_dim: PositiveInt = 128
    mamba_num_groups: PositiveInt = 8
    mamba_conv_kernel: PositiveInt = 4
    num_moe_experts: PositiveInt = 512
    moe_router_topk: PositiveInt = 22
    moe_ffn_hidden_size: PositiveInt = 2688
    moe_latent_size: PositiveInt | None = 1024
    moe_shared_expert_intermediate_size: NonNegativeInt = 5376
    vocab_size: PositiveInt = 131072
    untie_embeddings: bool = True
    mtp_num_layers: NonNegativeInt = 2

    @model_validator(mode="after")
    def _pattern_matches_layers(self) -> ModelSection:
        if len(self.hybrid_pattern) != self.num_layers:
            raise ValueError(
                f"model.hybrid_pattern has {len(self.hybrid_pattern)} layers but model.num_layers is {self.num_layers}"
            )
        bad = set(self.hybrid_pattern) - set("ME*-")
        if bad:
            raise ValueError(f"model.hybrid_pattern may only contain M, E, * and - (found {''.join(sorted(bad))})")
        if self.moe_router_topk > self.num_moe_experts:
            raise ValueError("model.moe_router_topk cannot exceed model.num_moe_experts")
        return self


class ParallelSection(Strict):
    """Megatron parallelism. Data parallelism is derived: world / (tensor * pipeline * context)."""

    tensor: PositiveInt = 1
    pipeline: PositiveInt = 1
    context: PositiveInt = 1
    expert: PositiveInt = 1
    expert_tensor: PositiveInt = 1
    sequence_parallel: bool = False


class TrainSection(Strict):
    train_iters: PositiveInt = 1000
    global_batch_size: PositiveInt = 3072
    micro_batch_size: PositiveInt = 1
    seq_length: PositiveInt = 8192
    eval_interval: PositiveInt = 1000
    eval_iters: NonNegativeInt = 10
    exit_interval: PositiveInt | None = None  # stop (after a checkpoint) at this iteration; phase 1 of a 2-phase run
    # Activation recompute trades compute for memory when the plan's per-GPU estimate does not fit:
    # selective recomputes attention internals, full recomputes whole layers.
    recompute: Literal["none", "selective", "full"] = "none"


class OptimizerSection(Strict):
    lr: PositiveFloat = 4.5e-4
    min_lr: float = Field(4.5e-6, ge=0)
    lr_schedule: Literal["wsd", "cosine", "constant", "linear"] = "wsd"
    warmup_iters: NonNegativeInt = 0
    decay_iters_fraction: float = Field(0.2, ge=0, le=1)
    decay_iters: PositiveInt | None = None  # iterations the schedule spans; null = train.train_iters
    wsd_decay_iters: PositiveInt | None = None  # WSD annealing length; null = decay_iters_fraction * decay span
    wsd_decay_style: Literal["exponential", "linear", "cosine", "minus_sqrt"] = "minus_sqrt"
    weight_decay: float = Field(0.1, ge=0)
    adam_beta1: float = Field(0.9, gt=0, lt=1)
    adam_beta2: float = Field(0.95, gt=0, lt=1)
    clip_grad: float = Field(1.0, ge=0)


class CheckpointSection(Strict):
    save_interval: PositiveInt = 1000
    save: str | None = None  # null = <job.output_dir>/checkpoints
    load: str | None = None  # resume from here; a requeued job resumes from `save` automatically
    # How run.model (when set) seeds this run: "weights" = model weights only, iteration 0, fresh optimizer
    # (SFT, long context); "full" = continue that run's iteration, optimizer and LR schedule (phase 2).
    from_model: Literal["weights", "full"] = "weights"
    async_save: bool = False


Precision = Literal["bf16", "fp8", "nvfp4"]


class MegatronTrainingConfig(StageConfig):
    """Fields shared by pretrain and SFT."""

    recipe: str
    model: ModelSection = Field(default_factory=ModelSection)
    train: TrainSection = Field(default_factory=TrainSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    parallel: ParallelSection = Field(default_factory=ParallelSection)
    precision: Precision = "bf16"
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)


class PretrainConfig(MegatronTrainingConfig):
    recipe: str = "nemotron_3_super_pretrain_config"
    phase: Literal["phase1", "phase2", "long_context", "long_context_mixed"] = "phase1"


class LoraSection(Strict):
    rank: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["linear_qkv", "linear_proj", "in_proj", "out_proj"])


class PeftSection(Strict):
    method: Literal["none", "lora"] = "none"
    lora: LoraSection = Field(default_factory=LoraSection)


class SftDataSection(Strict):
    pack_size: PositiveInt = 4096


class ExportSection(Strict):
    hf: bool = True
    hf_dir: str | None = None  # null = <job.output_dir>/hf


class SftConfig(MegatronTrainingConfig):
    recipe: str = "nemotron_3_super_sft_config"
    peft: PeftSection = Field(default_factory=PeftSection)
    data: SftDataSection = Field(default_factory=SftDataSection)
    export: ExportSection = Field(default_factory=ExportSection)

    @model_validator(mode="after")
    def _pack_fits(self) -> SftConfig:
        if self.data.pack_size > self.train.seq_length:
            raise ValueError(
                f"data.pack_size ({self.data.pack_size}) exceeds train.seq_length ({self.train.seq_length})"
            )
        return self
