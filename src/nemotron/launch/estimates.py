"""Size and cost rows for the dry-run plan, from the architecture calculator (pure Python, fast)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class StepHours:
    """GPU-hours of one pipe step: a calculator estimate (training) or a time-limit bound (the rest)."""

    hours: float
    estimated: bool


def _limit_hours(time_limit: str) -> float:
    days, _, clock = time_limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")] + [0, 0]
    return (int(days) if days else 0) * 24 + parts[0] + parts[1] / 60 + parts[2] / 3600


def _iterations(data: dict[str, Any]) -> int:
    """Iterations this run trains: up to ``exit_interval`` when it stops early (phase 1 of two)."""
    train = data.get("train") or {}
    end = int(train.get("train_iters") or 0)
    stop = train.get("exit_interval")
    return min(end, int(stop)) if stop else end


def pipe_gpu_hours(
    steps: list[Any], configs: dict[str, dict[str, Any]], wiring: dict[str, dict[str, str]]
) -> dict[str, StepHours | None]:
    """``step id -> StepHours`` (None without GPUs or without a resolved config).

    Training steps (a ``train:`` section) are estimated from the calculator over the iterations they
    run: a step that continues its input's run (``checkpoint.from_model: full``, phase 2) counts only
    the iterations after the producer's stop. Other GPU steps are bounded by nodes x GPUs x time limit.
    """
    from nemotron.model.plan import estimate_from_config

    out: dict[str, StepHours | None] = {}
    for step in steps:
        data = configs.get(step.id)
        res = (data or {}).get("resources") or {}
        gpus = int(res.get("nodes") or 0) * int(res.get("gpus_per_node") or 0)
        if not data or not gpus:
            out[step.id] = None
            continue
        if data.get("train") and data.get("model") is not None:
            iters = _iterations(data)
            producer = configs.get(wiring.get(step.id, {}).get("model", ""))
            if (data.get("checkpoint") or {}).get("from_model") == "full" and producer and producer.get("train"):
                iters = max(0, iters - _iterations(producer))
            trimmed = {**data, "train": {**data["train"], "train_iters": iters}}
            try:
                estimate = estimate_from_config(trimmed).hours
            except (UserError, ValueError):
                estimate = None
            if estimate is not None:
                out[step.id] = StepHours(float(estimate.gpu_hours), True)
                continue
        out[step.id] = StepHours(gpus * _limit_hours(str(res.get("time", "0:00:00"))), False)
    return out
