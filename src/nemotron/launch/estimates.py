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
