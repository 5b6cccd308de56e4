"""The calculator applied to one resolved training-stage config, for dry-run plans.

Why here and not in execution/: the mapping from config sections (model, train, parallel, precision,
resources) to calculator arguments is model knowledge; the plan printer only needs ``lines()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nemotron.model.arch import SUPER3, HybridArch
from nemotron.model.calculator import (
    FlopEstimate,
    GpuHours,
    MemoryEstimate,
    ParamCount,
    count_params,
    flops_per_token,
    gpu_hours,
    gpu_spec,
    memory_per_gpu,
)


@dataclass(frozen=True)
class TrainingEstimate:
    """Sizes and costs of one training stage; ``memory``/``hours`` are None without GPUs."""

    params: ParamCount
    flops: FlopEstimate
    tokens: int
    num_gpus: int
    gpu: str
    memory: MemoryEstimate | None
    hours: GpuHours | None
    note: str = ""

    def lines(self) -> list[str]:
        out = [f"model: {self.params.summary()}", f"training FLOPs/token: {self.flops.total:.3g}"]
        if self.memory is not None:
            cap = gpu_spec(self.gpu).memory_gib
            spare = cap - self.memory.total
            verdict = (
                f"{spare:.1f} GiB spare"
                if spare >= 0
                else f"OVER by {-spare:.1f} GiB (try train.recompute=selective or full)"
            )
            out.append(f"memory (estimate): {self.memory.summary()}; {self.gpu} has {cap:.0f} GiB, {verdict}")
        if self.hours is not None:
            out.append(f"tokens: {self.tokens:,}; compute: {self.hours.summary()}")
        if self.note:
            out.append(self.note)
        return out


def trainable_fraction(cfg: Mapping[str, Any], arch: HybridArch) -> float:
    """Share of the weights that train: 1 for full training; for LoRA an upper bound of the adapters.

    A rank-r adapter on a d_in x d_out linear adds r x (d_in + d_out) weights, 2r / hidden of a square
    hidden x hidden projection and less for the wider MoE and Mamba projections: 2r / hidden bounds it.
    """
    peft = cfg.get("peft") or {}
    if peft.get("method", "none") in (None, "none"):
        return 1.0
    rank = int((peft.get("lora") or {}).get("rank", 32))
    return min(1.0, 2 * rank / arch.hidden_size)


def estimate_from_config(
    cfg: Mapping[str, Any],
    gpu: str = "B200",
    mfu: float | None = None,
    recompute: str = "none",
) -> TrainingEstimate:
    """Estimate a pretrain/SFT stage from its resolved config (model: keys missing = Super3 values).

    Tokens = train_iters x global_batch_size x seq_length. GPUs = nodes x gpus_per_node; with no GPUs
    (the CPU ``tiny`` backend) memory and GPU-hours are left out.
    """
    arch = HybridArch.from_config(SUPER3.to_config() | dict(cfg.get("model") or {}))
    train = cfg.get("train") or {}
    resources = cfg.get("resources") or {}
    seq = int(train.get("seq_length", 8192))
    mbs = int(train.get("micro_batch_size", 1))
    tokens = int(train.get("train_iters", 0)) * int(train.get("global_batch_size", 0)) * seq
    num_gpus = int(resources.get("nodes", 1) or 0) * int(resources.get("gpus_per_node", 0) or 0)
    precision = str(cfg.get("precision", "bf16"))
    peft = (cfg.get("peft") or {}).get("method", "none")
    params = count_params(arch)
    flops = flops_per_token(arch, seq)
    memory = hours = None
    note = ""
    if num_gpus:
        memory = memory_per_gpu(
            arch,
            dict(cfg.get("parallel") or {}),
            precision,
            mbs,
            seq,
            recompute=recompute,
            num_gpus=num_gpus,
            trainable_fraction=trainable_fraction(cfg, arch),
        )
        if peft not in (None, "none"):
            note = f"memory: {peft} adapters counted as {trainable_fraction(cfg, arch):.2%} of the weights (trainable)"
    if num_gpus and tokens:
        hours = gpu_hours(arch, tokens, num_gpus, gpu=gpu, precision=precision, mfu=mfu, seq_length=seq)
    return TrainingEstimate(params, flops, tokens, num_gpus, gpu_spec(gpu).name, memory, hours, note)
