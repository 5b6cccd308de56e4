"""Size and cost estimates for the plan, from the architecture calculator (pure Python, fast)."""

from __future__ import annotations

from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage

PLAN_GPU = "B200"
"""GPU type the GPU-hour estimate assumes (the published recipe's NVFP4 numbers are for B200)."""


def _training_tokens(data: dict[str, Any]) -> int | None:
    train = data.get("train")
    if not train:
        return None
    return int(train["train_iters"]) * int(train["global_batch_size"]) * int(train["seq_length"])


def estimates_for(stage: Stage, data: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows ``(label, value)``: parameters always when the config has a model; memory and GPU-hours for
    the Megatron training stages. An estimate that cannot be made is shown as such, never fatal."""
    from nemotron.model.arch import HybridArch
    from nemotron.model.calculator import count_params, gpu_hours, memory_per_gpu

    model = data.get("model")
    if not model:
        return []
    rows: list[tuple[str, str]] = []
    try:
        arch = HybridArch.from_config(model)
        rows.append(("parameters", count_params(arch).summary()))
    except (UserError, ValueError) as exc:
        return [("parameters", f"cannot estimate: {exc}")]
    res = data.get("resources", {})
    gpus = int(res.get("nodes", 1)) * int(res.get("gpus_per_node", 0))
    train = data.get("train")
    if data.get("backend") != "megatron" or not gpus or not train:
        return rows
    precision = data.get("precision", "bf16")
    try:
        memory = memory_per_gpu(
            arch,
            data.get("parallel", {}),
            precision=precision,
            micro_batch_size=int(train["micro_batch_size"]),
            seq_length=int(train["seq_length"]),
            num_gpus=gpus,
        )
        fits = "fits" if memory.fits(PLAN_GPU) else "[red]does NOT fit[/red]"
        rows.append(
            (
                "memory / GPU",
                f"{memory.total:.1f} GiB (weights {memory.weights:.1f}, grads {memory.grads:.1f}, "
                f"optimizer {memory.optimizer:.1f}, activations {memory.activations:.1f}) — {fits} on {PLAN_GPU}",
            )
        )
    except (UserError, ValueError) as exc:
        rows.append(("memory / GPU", f"cannot estimate: {exc}"))
    tokens = _training_tokens(data)
    if tokens:
        try:
            hours = gpu_hours(
                arch, tokens, gpus, gpu=PLAN_GPU, precision=precision, seq_length=int(train["seq_length"])
            )
            rows.append(("tokens", f"{tokens:,} ({tokens / 1e9:.1f}B)"))
            rows.append(("GPU-hours", hours.summary()))
        except (UserError, ValueError) as exc:
            rows.append(("GPU-hours", f"cannot estimate: {exc}"))
    return rows
