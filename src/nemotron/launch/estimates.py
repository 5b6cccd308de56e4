"""Size and cost rows for the dry-run plan, from the architecture calculator (pure Python, fast)."""

from __future__ import annotations

from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage


def estimates_for(stage: Stage, data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, value)`` rows. Training stages (a ``train:`` section) get parameters, memory per GPU
    and GPU-hours; other stages with a ``model:`` section get the parameter count. An estimate that
    cannot be made is shown as such: it never stops the plan."""
    from nemotron.model.arch import HybridArch
    from nemotron.model.calculator import count_params
    from nemotron.model.plan import estimate_from_config

    if not data.get("model"):
        return []
    try:
        if data.get("train"):
            lines = estimate_from_config(data, recompute=data["train"].get("recompute", "none")).lines()
        else:
            lines = [f"model: {count_params(HybridArch.from_config(data['model'])).summary()}"]
    except (UserError, ValueError) as exc:
        return [("estimate", f"cannot estimate: {exc}")]
    rows = []
    for line in lines:
        label, _, value = line.partition(": ")
        rows.append((label, value))
    return rows


ABSURD_WALL_HOURS = (
    24 * 365 * 100
)  # a century on its GPUs is a typo (train_iters=1e29); full-scale defaults plan ~1 year on 32


def absurd_plan_warning(data: dict[str, Any]) -> str | None:
    """A one-line warning when the stage's own estimate says it would run for more than a century."""
    from nemotron.model.plan import estimate_from_config

    if not data.get("model") or not data.get("train"):
        return None
    try:
        est = estimate_from_config(data, recompute=data["train"].get("recompute", "none"))
    except (UserError, ValueError, OverflowError):
        return None
    hours = est.hours.gpu_hours if est.hours is not None else 0.0
    if not hours or not est.num_gpus or hours / est.num_gpus <= ABSURD_WALL_HOURS:
        return None
    years = hours / est.num_gpus / (24 * 365)
    return (
        f"train.train_iters={data['train'].get('train_iters')} plans {hours:.3g} GPU-hours "
        f"({years:.3g} years on {est.num_gpus} GPUs) — check train.train_iters"
    )
