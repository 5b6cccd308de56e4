"""Check a stage's input artifacts against the registry before anything is submitted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage


@dataclass(frozen=True)
class InputStatus:
    slot: str
    ref: str | None
    artifact: Any | None  # the registry's Artifact when found
    problem: str | None  # one-line reason when the input cannot be used


def check_inputs(
    stage: Stage, run: dict[str, str | None], registry: Any, backend: str | None = None
) -> list[InputStatus]:
    """Look every ``run.<slot>`` reference up; a missing optional input with no reference is fine.

    With ``backend``, a model input must be in the format the stage loads there (an HF checkpoint
    given to a Megatron stage names ``super3 model import``), and data registered with
    ``artifacts add`` must be unchanged since.
    """
    from nemotron.artifacts.add import reference_problem
    from nemotron.pipeline import model_formats

    statuses = []
    for port in stage.inputs:
        ref = run.get(port.slot)
        if not ref:
            problem = None if port.optional else f"run.{port.slot} is not set (needs a {port.kind} artifact)"
            if problem and port.external:
                problem += (
                    f" — register it with `nemotron artifacts add PATH --name NAME --kind {port.kind}`,"
                    f" then pass run.{port.slot}=NAME"
                )
            statuses.append(InputStatus(port.slot, None, None, problem))
            continue
        try:
            artifact = registry.get(ref)
        except UserError as error:
            statuses.append(InputStatus(port.slot, ref, None, error.one_line()))
            continue
        problem = None
        if artifact.kind != port.kind:
            problem = f"run.{port.slot}={ref} is a {artifact.kind} artifact, stage {stage.display} needs {port.kind}"
        problem = problem or reference_problem(artifact)  # added in place: says what to do about it
        if problem is None:
            try:  # tampered or overwritten data: refuse now, not after the job queued (the node checks again)
                registry.verify(artifact, what=f"run.{port.slot}={artifact.ref}")
            except UserError as error:
                problem = error.one_line()
        if problem is None and backend is not None:
            problem = model_formats.check(stage.name, backend, port.slot, ref, artifact)
        statuses.append(InputStatus(port.slot, ref, artifact, problem))
    return statuses


def first_problem(statuses: list[InputStatus]) -> str | None:
    return next((s.problem for s in statuses if s.problem), None)
