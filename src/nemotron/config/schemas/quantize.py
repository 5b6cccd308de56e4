"""Schema for ModelOpt post-training quantization."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from nemotron.config.schemas.common import StageConfig, Strict
from nemotron.config.schemas.training import ExportSection, ModelSection, ParallelSection

QuantRecipe = Literal[
    "mamba_moe_fp8_conservative",
    "mamba_moe_fp8_aggressive",
    "mamba_moe_nvfp4_conservative",
    "mamba_moe_nvfp4_aggressive",
]


class QuantSection(Strict):
    configs: list[QuantRecipe] = Field(default_factory=lambda: ["mamba_moe_fp8_conservative"], min_length=1)
    calib_size: PositiveInt = 512
    calib_seq_length: PositiveInt = 4096
    calib_batch_size: PositiveInt = 1
    # FP8 KV cache (Megatron-Bridge quantize.py --export-kv-cache-quant); the tiny backend ignores it
    kv_cache_fp8: bool = False


class QuantizeConfig(StageConfig):
    model: ModelSection = Field(default_factory=ModelSection)
    quant: QuantSection = Field(default_factory=QuantSection)
    parallel: ParallelSection = Field(default_factory=ParallelSection)
    export: ExportSection = Field(default_factory=ExportSection)
