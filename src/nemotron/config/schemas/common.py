"""Sections every stage config shares, and the strict base model all schemas build on.

Every model forbids unknown keys: a typo such as ``trian.train_iters`` must fail validation (the CLI
turns pydantic's error into "did you mean train.train_iters?") instead of being silently ignored on
a 500-GPU job.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

ARTIFACT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(:[A-Za-z0-9._-]+)?$")
SLURM_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$")


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Resources(Strict):
    """What the stage asks the scheduler for (the env profile supplies account/partition)."""

    nodes: PositiveInt = 1
    gpus_per_node: int = Field(8, ge=0)
    ntasks_per_node: PositiveInt | None = None
    cpus_per_task: PositiveInt | None = None
    time: str = "04:00:00"
    container: str | None = None

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        if not SLURM_TIME.match(value):
            raise ValueError(f"'{value}' is not a Slurm time limit such as 04:00:00 or 1-12:00:00")
        return value

    @property
    def world_size(self) -> int:
        """GPUs in the whole allocation (one rank per GPU)."""
        return self.nodes * self.gpus_per_node


class Output(Strict):
    """The artifact this stage publishes."""

    name: str
    aliases: list[str] = Field(default_factory=lambda: ["latest"])

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not ARTIFACT_REF.match(value) or ":" in value:
            raise ValueError(f"'{value}' is not a valid artifact name (letters, digits, '.', '_', '-')")
        return value


class Logging(Strict):
    """Metrics logging; W&B settings themselves come from env.toml's [wandb] section."""

    log_interval: PositiveInt = 10
    wandb: bool = True


class StageConfig(Strict):
    """Keys every stage config has (see docs/architecture.md)."""

    backend: Literal["megatron", "tiny"] = "megatron"
    run: dict[str, str | None] = Field(default_factory=dict)
    output: Output
    output_dir: str | None = None
    resources: Resources = Field(default_factory=Resources)
    logging: Logging = Field(default_factory=Logging)
    seed: int = 1234

    @field_validator("run")
    @classmethod
    def _valid_refs(cls, refs: dict[str, str | None]) -> dict[str, str | None]:
        for slot, ref in refs.items():
            if ref is not None and not ref.startswith("${") and not ARTIFACT_REF.match(ref):
                raise ValueError(f"run.{slot}='{ref}' is not an artifact reference such as NAME:latest or NAME:v3")
        return refs
