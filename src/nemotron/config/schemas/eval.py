"""Schema for evaluation with NeMo-Evaluator (or lm-eval on local tasks for the tiny backend)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt

from nemotron.config.schemas.common import StageConfig, Strict


class DeploymentSection(Strict):
    """How the model is served for evaluation (vLLM in the NeMo-Evaluator flow)."""

    type: str = "vllm"
    tensor_parallel: PositiveInt = 8
    data_parallel: PositiveInt = 1
    max_model_len: PositiveInt = 32768


class EvalSection(Strict):
    tasks: list[str] = Field(min_length=1)
    limit: NonNegativeInt | None = None  # samples per task; null = all
    batch_size: PositiveInt = 8
    tolerance: float = Field(0.05, ge=0)  # max allowed drop of a quantized model vs the bf16 model


class EvalConfig(StageConfig):
    eval: EvalSection
    deployment: DeploymentSection = Field(default_factory=DeploymentSection)
