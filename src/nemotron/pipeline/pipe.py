"""``pipe``: the stages of a pipe config as one dependency graph, minus what already exists.

Wiring: each input port of a stage is fed by the nearest earlier stage in the pipe whose output
has the port's kind (data prep stages have no inputs; an input no earlier stage produces keeps
the reference in the stage's own config — e.g. pretrain's optional starting model). A step may name
its producers explicitly (``inputs: {data: data_prep.pretrain.phase2}``), and one stage may appear
several times under distinct step ids (``id: pretrain.phase2``): the published pretraining chain
runs data prep and pretrain once per phase. Ports fed from outside the recipe (``model import``'s
model, see ``Port.external``) are wired only explicitly.

Skipping: a stage is skipped when the registry holds its output made by the same resolved config
(``config_hash``, which leaves out run:/resources/output_dir/logging) from the same inputs (the
artifact's recorded lineage matches what the pipe would feed it now: the same version, or another
version of that name with the same content digest). A stage fed by a stage that runs, runs too.
``--from`` forces a stage and everything after it, ``--only`` one stage, and ``--force``
everything; stages that may not run then must already have their output, in this chain's lineage
(never the newest output of the same config made from other inputs).

References: a consumer of a stage that runs in this experiment reads ``<output>:exp-<experiment>``
(the node publishes that alias, so parallel pipes never read each other's ``latest``); a consumer
of a skipped stage reads the existing artifact pinned as ``<output>:vN``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts.digest import DIGEST_PREFIX as CONTENT_DIGEST
from nemotron.errors import UserError
from nemotron.execution.job import PreparedJob
from nemotron.paths import CONFIGS_DIR
from nemotron.pipeline.stages import FAMILY, Stage, get_stage

RUN, SKIP, UNSELECTED = "run", "skip", "not selected"


@dataclass(frozen=True)
class PipeStep:
    """One stage of a pipe, the named config (or YAML path) it runs with, and its step id.

    ``id`` is unique within the pipe (default: the stage name); ``inputs`` wires a slot to the step
    id of its producer explicitly instead of the nearest earlier producer of the slot's kind.
    """

    stage: Stage
    config: str
    id: str = ""
    inputs: dict[str, str] = field(default_factory=dict, hash=False)
    overrides: dict[str, Any] = field(default_factory=dict, hash=False)  # key=value for this step (CLI wins)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.stage.name)


@dataclass(frozen=True)
class StageInfo:
    """What planning needs from a stage's resolved config (resolution itself is the caller's)."""

    output_name: str
    config_hash: str


@dataclass
class StagePlan:
    step: PipeStep
    action: str = RUN  # run | skip | not selected
    reason: str = ""
    info: StageInfo | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # slot -> reference the pipe feeds
    depends_on: list[str] = field(default_factory=list)  # stage names it waits for (afterok)
    artifact: str | None = None  # name:vN reused when skipped
    job: PreparedJob | None = None

    @property
    def name(self) -> str:
        """The step id (the stage name unless the stage appears more than once)."""
        return self.step.id


@dataclass
class PipePlan:
    experiment_id: str
    publish_alias: str
    stages: list[StagePlan]

    @property
    def jobs(self) -> list[PreparedJob]:
        return [s.job for s in self.stages if s.action == RUN and s.job is not None]

    @property
    def to_run(self) -> list[StagePlan]:
        return [s for s in self.stages if s.action == RUN]

    @property
    def skipped(self) -> list[StagePlan]:
        return [s for s in self.stages if s.action == SKIP]


# ------------------------------------------------------------------------------------ pipe config


def pipe_config_dir() -> Path:
    return CONFIGS_DIR / FAMILY / "pipe"


def available_pipes() -> list[str]:
    return sorted(p.stem for p in pipe_config_dir().glob("*.yaml"))


def load_pipe(name_or_path: str | None) -> tuple[str, list[PipeStep]]:
    """Read ``configs/super3/pipe/<name>.yaml`` (or a path): ``stages:`` plus an optional ``config:``.

    Each entry of ``stages`` is a canonical stage name, or a mapping ``{stage: NAME, config: CONFIG,
    id: STEP_ID, inputs: {SLOT: STEP_ID}, overrides: {KEY: VALUE}}`` (all but ``stage`` optional);
    entries without ``config`` use ``config:`` (default: the pipe's name). Step ids must be unique.
    """
    import yaml

    name = name_or_path or "default"
    path = Path(name).expanduser()
    if not (path.suffix in (".yaml", ".yml") or "/" in name):
        path = pipe_config_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"no pipe config '{name}'", hint=f"available: {', '.join(available_pipes()) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise UserError(f"{path} must have a non-empty 'stages:' list of stage names")
    default_config = str(data.get("config") or path.stem)
    steps: list[PipeStep] = []
    for entry in data["stages"]:
        if isinstance(entry, dict):
            stage, config = get_stage(str(entry.get("stage", ""))), str(entry.get("config") or default_config)
            inputs = {str(k): str(v) for k, v in (entry.get("inputs") or {}).items()}
            overrides = dict(entry.get("overrides") or {})
            step = PipeStep(stage, config, id=str(entry.get("id") or ""), inputs=inputs, overrides=overrides)
        else:
            step = PipeStep(get_stage(str(entry)), default_config)
        if any(s.id == step.id for s in steps):
            raise UserError(
                f"{path}: step {step.id} appears twice", hint="give repeated stages distinct ids (id: pretrain.phase2)"
            )
        steps.append(step)
    check_steps(steps, str(path))
    return path.stem, steps


def check_steps(steps: list[PipeStep], where: str) -> None:
    """Explicit inputs name an earlier step of the right kind, on a real input slot."""
    seen: dict[str, PipeStep] = {}
    for step in steps:
        ports = {p.slot: p for p in step.stage.inputs}
        for slot, producer in step.inputs.items():
            if slot not in ports:
                raise UserError(
                    f"{where}: step {step.id} has no input slot '{slot}'", hint=f"slots: {', '.join(ports)}"
                )
            if producer not in seen:
                raise UserError(
                    f"{where}: step {step.id} input {slot} names '{producer}', which is not an earlier step"
                )
            if seen[producer].stage.output.kind != ports[slot].kind:
                raise UserError(
                    f"{where}: step {step.id} input {slot} needs {ports[slot].kind}, "
                    f"but {producer} makes {seen[producer].stage.output.kind}"
                )
        seen[step.id] = step


# ----------------------------------------------------------------------------------------- wiring


def wire(steps: list[PipeStep] | list[Stage]) -> dict[str, dict[str, str]]:
    """``consumer id -> {slot: producer id}``: explicit ``inputs`` first, otherwise the nearest earlier
    producer of the slot's kind (external ports only explicitly)."""
    items = [s if isinstance(s, PipeStep) else PipeStep(s, "") for s in steps]
    wiring: dict[str, dict[str, str]] = {}
    for i, step in enumerate(items):
        slots: dict[str, str] = {}
        for port in step.stage.inputs:
            if port.slot in step.inputs:
                slots[port.slot] = step.inputs[port.slot]
                continue
            if port.external:
                continue
            for producer in reversed(items[:i]):
                if producer.stage.output.kind == port.kind:
                    slots[port.slot] = producer.id
                    break
        wiring[step.id] = slots
    return wiring


def upstream(wiring: dict[str, dict[str, str]], name: str) -> set[str]:
    """Every stage whose output ``name`` needs, directly or through other stages."""
    seen: set[str] = set()
    todo = list(wiring.get(name, {}).values())
    while todo:
        producer = todo.pop()
        if producer not in seen:
            seen.add(producer)
            todo += wiring.get(producer, {}).values()
    return seen


def pick(steps: list[PipeStep], name: str | None, flag: str) -> str | None:
    """Resolve ``--from``/``--only`` to a step id of this pipe (a step id, or a stage that appears once)."""
    if name is None:
        return None
    ids = [s.id for s in steps]
    if name in ids:
        return name
    stage = get_stage(name)
    matches = [s.id for s in steps if s.stage.name == stage.name]
    if len(matches) != 1:
        hint = f"its steps: {', '.join(ids)}"
        if matches:
            raise UserError(f"{flag} {name}: stage {stage.name} runs as {', '.join(matches)}; name one", hint=hint)
        raise UserError(f"{flag} {name}: stage {stage.name} is not part of this pipe", hint=hint)
    return matches[0]


# --------------------------------------------------------------------------------------- planning


def plan_pipe(
    steps: list[PipeStep],
    resolve: Callable[[PipeStep], StageInfo],
    registry: Any,
    *,
    experiment_id: str,
    prepare: Callable[[PipeStep, dict[str, str], tuple[str, ...], str], PreparedJob] | None = None,
    from_: str | None = None,
    only: str | None = None,
    force: bool = False,
) -> PipePlan:
    """Decide run/skip for every stage and (with ``prepare``) prepare the jobs that run.

    ``resolve(step)`` returns the stage's output name and config hash (the caller owns config
    loading); ``prepare(step, run_overrides, depends_on_job_ids, publish_alias)`` writes the job
    dir. ``registry`` is a ``nemotron.artifacts.Registry``.
    """
    if from_ and only:
        raise UserError(
            "--from and --only cannot be combined", hint="--only runs one stage, --from a stage and the rest"
        )
    from_ = pick(steps, from_, "--from")
    only = pick(steps, only, "--only")
    names = [s.id for s in steps]
    if len(set(names)) != len(names):
        raise UserError("pipe steps must have distinct ids", hint="give repeated stages an id (id: pretrain.phase2)")
    wiring = wire(steps)
    alias = f"exp-{experiment_id}"

    selected = set(names)
    may_run = set(names)
    forced: set[str] = set(names) if force else set()
    if only:
        selected = {only} | upstream(wiring, only)
        may_run, forced = {only}, {only}
    elif from_:
        idx = names.index(from_)
        may_run = set(names[idx:])
        forced |= may_run

    plans = {s.id: StagePlan(step=s) for s in steps}
    for step in steps:
        plan = plans[step.id]
        if plan.name not in selected:
            plan.action, plan.reason = UNSELECTED, f"--only {only}"
            continue
        plan.info = resolve(step)
        fed_by = wiring[plan.name]
        running = [p for p in fed_by.values() if plans[p].action == RUN]
        if plan.name not in may_run:
            _reuse(plan, registry, plans, fed_by, why="--only" if only else "--from")
            continue
        if plan.name in forced:
            plan.action, plan.reason = RUN, "forced" if force else (f"--only {only}" if only else f"--from {from_}")
        elif running:
            plan.action, plan.reason = RUN, f"its input from {', '.join(running)} is rebuilt"
        else:
            match = match_output(plan, registry, plans, fed_by)
            if match.artifact is not None:
                plan.action, plan.artifact, plan.reason = SKIP, match.artifact.ref, match.why
            else:
                plan.action, plan.reason = RUN, match.why
        for slot, producer in fed_by.items():
            p = plans[producer]
            assert p.info is not None
            plan.inputs[slot] = f"{p.info.output_name}:{alias}" if p.action == RUN else str(p.artifact)
            if p.action == RUN:
                plan.depends_on.append(producer)

    result = PipePlan(experiment_id=experiment_id, publish_alias=alias, stages=[plans[n] for n in names])
    if prepare is not None:
        job_ids: dict[str, str] = {}
        for plan in result.to_run:
            deps = tuple(job_ids[d] for d in plan.depends_on)
            plan.job = prepare(plan.step, dict(plan.inputs), deps, alias)
            job_ids[plan.name] = plan.job.job_id
    return result


def _pinned_inputs(plans: dict[str, StagePlan], fed_by: dict[str, str]) -> dict[str, str] | None:
    """slot -> name:vN of skipped producers; None when a producer runs (no pinned version yet)."""
    pinned = {}
    for slot, producer in fed_by.items():
        artifact = plans[producer].artifact
        if plans[producer].action != SKIP or not artifact:
            return None
        pinned[slot] = artifact
    return pinned


@dataclass(frozen=True)
class Match:
    """The existing output a stage can reuse (or None) and, either way, the reason in words."""

    artifact: Any | None
    why: str


class _Inputs:
    """Compares recorded inputs with the ones the pipe feeds now: same version, or same content.

    An identical re-publish (a data prep re-run whose bytes did not change) gets a new version with
    the same content digest; a consumer made from the old version is still made from this data.
    """

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.cache: dict[str, Any] = {}

    def _get(self, ref: str) -> Any | None:
        if ref not in self.cache:
            try:
                self.cache[ref] = self.registry.get(ref)
            except UserError:
                self.cache[ref] = None
        return self.cache[ref]

    def same(self, recorded: str | None, wanted: str) -> bool:
        if recorded == wanted:
            return True
        if not recorded or recorded.split(":")[0] != wanted.split(":")[0]:
            return False
        a, b = self._get(recorded), self._get(wanted)
        return bool(a and b and a.digest and a.digest == b.digest and a.digest.startswith(CONTENT_DIGEST))

    def recorded(self, art: Any, slot: str, wanted: str) -> str | None:
        if art.input_slots:
            return art.input_slots.get(slot)
        return next((ref for ref in art.inputs if ref.split(":")[0] == wanted.split(":")[0]), None)

    def fits(self, art: Any, pinned: dict[str, str]) -> bool:
        return all(self.same(self.recorded(art, slot, ref), ref) for slot, ref in pinned.items())

    def changes(self, art: Any, pinned: dict[str, str]) -> list[str]:
        """``input tiny-rl-data changed v1 → v2`` for each input that differs from ``art``'s."""
        out = []
        for slot, ref in pinned.items():
            was = self.recorded(art, slot, ref)
            if self.same(was, ref):
                continue
            name, _, now_ver = ref.partition(":")
            if was and was.split(":")[0] == name:
                out.append(f"input {name} changed {was.partition(':')[2]} → {now_ver}")
            else:
                out.append(f"input {slot} changed {was or 'nothing'} → {ref}")
        return out


def match_output(plan: StagePlan, registry: Any, plans: dict[str, StagePlan], fed_by: dict[str, str]) -> Match:
    """The newest output of this stage made by its config from the inputs the pipe feeds it now.

    Candidates are versions of the stage's output made with the same config hash whose data still
    exists; one fits when each recorded input is the pinned version or holds the same content. When
    none fits, ``why`` is the true reason: which input changed (``input tiny-rl-data changed v1 →
    v2``), that the data is gone, or that this config never ran.
    """
    assert plan.info is not None
    pinned = _pinned_inputs(plans, fed_by)
    if pinned is None:
        return Match(None, "an input is rebuilt in this experiment")
    made, gone = [], []
    for art in reversed(registry.versions(plan.info.output_name)):  # newest first
        if art.run.config_hash != plan.info.config_hash or art.run.stage not in ("", "unknown", plan.step.stage.name):
            continue
        (gone if "://" not in art.path and not Path(art.path).exists() else made).append(art)
    inputs = _Inputs(registry)
    fits = [art for art in made if inputs.fits(art, pinned)]
    if fits:
        chosen = fits[0]
        why = f"{chosen.ref} was made by this config (job {chosen.run.job_id or '?'})"
        if pinned:
            why += " from the same inputs"
        if len(fits) > 1:
            why += f"; newest of {len(fits)} that fit ({', '.join(a.ref for a in fits)})"
        return Match(chosen, why)
    if made:
        changed = inputs.changes(made[0], pinned)
        return Match(None, f"{'; '.join(changed)} (since {made[0].ref})")
    if gone:
        return Match(None, f"the data of {gone[0].ref} is gone ({gone[0].path})")
    return Match(None, "no output for this config yet")


def _reuse(plan: StagePlan, registry: Any, plans: dict[str, StagePlan], fed_by: dict[str, str], *, why: str) -> None:
    """A stage that may not run (``--only``/``--from``) must already have its output, in this chain's lineage."""
    match = match_output(plan, registry, plans, fed_by)
    assert plan.info is not None
    if match.artifact is None:
        raise UserError(
            f"{why}: {plan.name} may not run, but there is no {plan.info.output_name} made by its config "
            f"(hash {plan.info.config_hash[:12]}) from the inputs this pipe feeds it: {match.why}",
            hint=f"run the pipe without {why} first, or start earlier",
        )
    plan.action, plan.artifact = SKIP, match.artifact.ref
    plan.reason = f"{why}: reusing {match.why}"
