"""Nemotron 3 Super architecture facts and the parameter / FLOP / memory / GPU-hour calculator.

Pure Python (no torch/numpy/pydantic), so the CLI's dry-run plan may import it freely.
"""

from nemotron.model.arch import SUPER3, HybridArch
from nemotron.model.calculator import (
    FlopEstimate,
    GpuHours,
    MemoryEstimate,
    ParamCount,
    count_params,
    flops_per_token,
    gpu_hours,
    memory_per_gpu,
)

__all__ = [
    "SUPER3",
    "FlopEstimate",
    "GpuHours",
    "HybridArch",
    "MemoryEstimate",
    "ParamCount",
    "count_params",
    "flops_per_token",
    "gpu_hours",
    "memory_per_gpu",
]
