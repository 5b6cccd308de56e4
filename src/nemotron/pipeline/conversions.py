"""Insert ``model import`` / ``model export`` steps where a pipe hands a model to a stage that cannot
load its format (see ``nemotron.pipeline.model_formats``).

Example: LoRA SFT writes a Megatron checkpoint only, NeMo-RL loads Hugging Face — so
``sft (-c lora) -> rl.rlvr`` becomes ``sft -> model.export.rl.rlvr -> rl.rlvr``. The inserted step is
an ordinary step: explicit wiring (``inputs``), its own output name (so two conversions in one pipe
never publish the same artifact), skipped like any other when its output already exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from nemotron.pipeline import model_formats
from nemotron.pipeline.pipe import PipeStep, wire
from nemotron.pipeline.stages import BY_NAME


def conversion_output(converter: str, consumer_id: str, backend: str) -> str:
    """``exported-rl-rlvr-model`` / ``tiny-imported-quantize-model``: the scheme's tag plus the consumer."""
    from nemotron.artifacts.naming import output_name

    return output_name(converter, "tiny" if backend == "tiny" else None, consumer_id.replace(".", "-"))


def insert_conversions(steps: list[PipeStep], info: Callable[[PipeStep], tuple[str, dict[str, Any]]]) -> list[PipeStep]:
    """``steps`` with a conversion before every consumer whose model input comes in the wrong format.

    ``info(step)`` returns ``(backend, resolved config)`` of a step.
    """
    wiring = wire(steps)
    by_id = {s.id: s for s in steps}
    out: list[PipeStep] = []
    for step in steps:
        producer_id = wiring[step.id].get("model")
        port = next((p for p in step.stage.inputs if p.slot == "model"), None)
        if producer_id is not None and port is not None and port.kind == "model":
            backend, _ = info(step)
            need = model_formats.needed(step.stage.name, backend)
            producer = by_id[producer_id]
            p_backend, p_data = info(producer)
            have = model_formats.written(producer.stage.name, p_backend, p_data)
            if need is not None and need not in have and producer.stage.output.kind == "model":
                converter = BY_NAME[model_formats.CONVERTER[need]]
                conv = PipeStep(
                    converter,
                    "tiny" if backend == "tiny" else "default",
                    id=f"{converter.name}.{step.id}",
                    inputs={"model": producer_id},
                    overrides={"output.name": conversion_output(converter.name, step.id, backend)},
                )
                out.append(conv)
                step = dataclasses.replace(step, inputs={**step.inputs, "model": conv.id})
        out.append(step)
    return out
