"""Schema for evaluation with NeMo-Evaluator (or lm-eval on local tasks for the tiny backend)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from nemotron.config.schemas.common import StageConfig, Strict


class DeploymentSection(Strict):
    """How the model is served for evaluation (vLLM in the NeMo-Evaluator flow)."""

    type: str = "vllm"
    image: str | None = None  # the vLLM image the evaluator deploys; pinned in nemotron.upstream.pins
    tensor_parallel: PositiveInt = 8
    data_parallel: PositiveInt = 1
    max_model_len: PositiveInt = 32768


class LauncherSection(Strict):
    """Where nemo-evaluator-launcher's Slurm executor submits the deployment + evaluation job.

    The launcher connects to ``hostname`` over SSH and runs ``sbatch`` there; its job serves the
    model with the pinned vLLM image and runs each task's harness container (pyxis), so no Docker is
    needed anywhere. ``output_dir`` defaults to the stage's output directory (a shared filesystem).
    """

    hostname: str | None = None  # login node (required by the megatron backend)
    username: str | None = None  # null = the launcher's default ($USER)
    account: str | None = None
    partition: str | None = None
    walltime: str = "04:00:00"
    poll_seconds: PositiveInt = 60  # how often the stage checks the launcher's job status


class EvalSection(Strict):
    tasks: list[str] = Field(min_length=1)
    limit: NonNegativeInt | None = None  # samples per task; null = all
    batch_size: PositiveInt = 8
    # max regression of a model vs the model it was made from, direction-aware (nemotron.node.results):
    # one number, or {task: number} (optionally "default") since tasks have their own scales
    tolerance: float | dict[str, float] = 0.05

    @field_validator("tolerance")
    @classmethod
    def _non_negative(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        values = value.values() if isinstance(value, dict) else [value]
        if any(v < 0 for v in values):
            raise ValueError("eval.tolerance values must be >= 0")
        return value


class EvalConfig(StageConfig):
    eval: EvalSection
    deployment: DeploymentSection = Field(default_factory=DeploymentSection)
    launcher: LauncherSection = Field(default_factory=LauncherSection)
