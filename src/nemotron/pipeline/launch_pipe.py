"""``nemotron super3 pipe``: load the pipe config, resolve every stage, plan, print, submit.

Config loading and job preparation are the stage commands' own (``nemotron.config.loader`` and
``nemotron.launch.prepare``), so a stage behaves the same inside a pipe as on its own; this module
only adds the per-stage override prefixes, the plan table and the hand-off to ``submit``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import shutil
import sys
import time
from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.conversions import insert_conversions
from nemotron.pipeline.pipe import RUN, SKIP, PipePlan, PipeStep, StageInfo, load_pipe, plan_pipe, wire


def split_overrides(overrides: dict[str, Any], steps: list[PipeStep]) -> dict[str, dict[str, Any]]:
    """``{"pretrain.train.train_iters": 3}`` -> ``{"pretrain": {"train.train_iters": 3}}`` (keyed by step id).

    The prefix is a step id (``pretrain.phase2``) or a stage of the pipe, in canonical (``rl.rlvr``)
    or dashed (``rl-rlvr``) spelling; a stage prefix applies to every step of that stage. The longest
    matching prefix wins, so ``data_prep.sft.x`` is not read as stage ``data_prep`` and
    ``pretrain.phase2.x`` reaches only that step.
    """
    spellings: dict[str, list[str]] = {}
    for step in steps:
        for name in (step.id, step.stage.name):
            for spelling in (name, name.replace(".", "-")):
                targets = spellings.setdefault(spelling, [])
                if step.id not in targets:
                    targets.append(step.id)
    out: dict[str, dict[str, Any]] = {step.id: {} for step in steps}
    for key, value in overrides.items():
        match = max((p for p in spellings if key.startswith(p + ".")), key=len, default=None)
        if match is None:
            raise UserError(
                f"pipe override '{key}' does not start with a stage of this pipe",
                hint=f"prefix it with one of: {', '.join(s.id for s in steps)} (e.g. pretrain.{key})",
            )
        for step_id in spellings[match]:
            out[step_id][key[len(match) + 1 :]] = value
    return out


def launch_pipe(
    *,
    config: str | None,
    run_profile: str | None,
    batch_profile: str | None,
    dry_run: bool,
    from_: str | None,
    only: str | None,
    force: bool,
    args: list[str],
    passthrough: list[str],
    write: Any = None,
    argv: list[str] | None = None,
    cluster: dict[str, Any] | None = None,
) -> int:
    """Run the pipe; returns the process exit code (1 when a stage failed)."""
    from nemotron.artifacts.registry import Registry
    from nemotron.config.loader import load_stage_config
    from nemotron.config.overrides import parse_overrides
    from nemotron.env.profiles import load_env
    from nemotron.launch.prepare import new_experiment_id, prepare_job
    from nemotron.launch.stage import select_profile

    write = write or _stdout
    t0 = time.monotonic()
    profile_name, detach = select_profile(run_profile, batch_profile)
    pipe_name, steps = load_pipe(config)
    cli = parse_overrides(args)
    overrides = split_overrides(cli, steps)
    env_file = load_env()
    profile = env_file.profile(profile_name).with_cluster_flags(cluster)
    registry = Registry(env_file.artifacts_root)
    experiment_id = new_experiment_id(f"pipe-{pipe_name}")
    resolved: dict[str, Any] = {}

    def load(step: PipeStep) -> Any:
        if step.id not in resolved:
            resolved[step.id] = load_stage_config(
                step.stage,
                step.config,
                profile_overrides=profile.config_overrides,
                profile_name=profile.name,
                cli_overrides={**step.overrides, **overrides.get(step.id, {})} or None,
            )
        return resolved[step.id]

    cli = _register_paths(steps, cli, overrides, registry, dry_run=dry_run, write=write)
    overrides = split_overrides(cli, steps)
    steps = insert_conversions(steps, lambda step: (load(step).data.get("backend", "megatron"), load(step).data))
    overrides = split_overrides(cli, steps)  # inserted steps take their stage's overrides too
    resolved.clear()
    _check_output_names(steps, load)

    def resolve(step: PipeStep) -> StageInfo:
        r = load(step)
        return StageInfo(output_name=r.data["output"]["name"], config_hash=r.config_hash)

    def prepare(step: PipeStep, run_refs: dict[str, str], depends_on: tuple[str, ...], alias: str) -> Any:
        r = load(step)
        data = copy.deepcopy(r.data)
        data["run"] = {**(data.get("run") or {}), **run_refs}
        return prepare_job(
            dataclasses.replace(r, data=data),
            experiment_id=experiment_id,
            profile=profile,
            env_file=env_file,
            argv=argv or ["nemotron", *sys.argv[1:]],
            cli_overrides={
                **step.overrides,
                **overrides.get(step.id, {}),
                **{f"run.{k}": v for k, v in run_refs.items()},
            },
            dry_run=dry_run,
            depends_on=depends_on,
            publish_alias=alias,
            passthrough=passthrough,
            step=step.id,
        )

    plan = plan_pipe(
        steps,
        resolve,
        registry,
        experiment_id=experiment_id,
        prepare=None if dry_run else prepare,
        from_=from_,
        only=only,
        force=force,
    )
    from nemotron.launch.stage import check_before_submit

    write(plan_table(plan, pipe_name, profile, {sid: r.data for sid, r in resolved.items()}))
    if plan.skipped:
        write(f"skipped (output exists for the same config): {', '.join(s.name for s in plan.skipped)}\n")
    # after the plan, so a dry-run shows the whole graph even when a step's data inputs are not there yet
    for stage in plan.to_run:
        try:
            check_before_submit(stage.step.stage.name, resolved[stage.name].data, registry)
        except UserError as error:
            raise UserError(f"{stage.name}: {error.message}", hint=error.hint) from None
    if dry_run:
        write("dry run: nothing submitted. One stage's full plan: nemotron super3 <stage> -c CONFIG --dry-run\n")
        return 0
    if not plan.jobs:
        write("nothing to run: every stage's output already exists (use --force or --from STAGE to rerun)\n")
        return 0
    _check_external_inputs(plan, registry)
    if not force:
        from nemotron.execution.duplicates import refuse_if_running

        try:
            refuse_if_running(plan.jobs, profile.name)
        except UserError:
            _remove_job_dirs(plan)  # nothing was submitted: leave no job files behind
            raise
    from nemotron.execution.submit import submit
    from nemotron.launch.stage import registry_notice

    write(registry_notice(env_file.artifacts_root) or "")

    write(f"nemotron: {len(plan.jobs)} job(s) prepared in {time.monotonic() - t0:.1f}s\n")
    result = submit(plan.jobs, profile, detach=detach)
    return int(result.exit_code)


def _remove_job_dirs(plan: PipePlan) -> None:
    for job in plan.jobs:
        shutil.rmtree(job.job_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            job.job_dir.parent.rmdir()  # the experiment's directory, once empty


def _register_paths(
    steps: list[PipeStep],
    cli: dict[str, Any],
    overrides: dict[str, dict[str, Any]],
    registry: Any,
    *,
    dry_run: bool,
    write: Any,
) -> dict[str, Any]:
    """``cli`` with each ``<step>.run.<slot>=PATH`` replaced by the registered path's reference,
    addressed to exactly the step(s) it reached (see ``launch.path_inputs``)."""
    from nemotron.launch.path_inputs import register_path_inputs

    by_id = {step.id: step for step in steps}
    out = dict(cli)
    for step_id, step_overrides in overrides.items():
        registered = register_path_inputs(by_id[step_id].stage, step_overrides, registry, dry_run=dry_run, echo=write)
        for key, value in registered.items():
            if value != step_overrides[key]:
                out = {k: v for k, v in out.items() if not (k.endswith("." + key) and v == step_overrides[key])}
                out[f"{step_id}.{key}"] = value
    return out


def _check_output_names(steps: list[PipeStep], load: Any) -> None:
    """Two steps of one pipe must not publish one name: consumers read ``<name>:exp-<id>``."""
    seen: dict[str, str] = {}
    for step in steps:
        name = load(step).data["output"]["name"]
        if name in seen:
            raise UserError(
                f"pipe steps {seen[name]} and {step.id} both publish '{name}'",
                hint=f"give one of them another output.name (e.g. {step.id}.output.name=...)",
            )
        seen[name] = step.id


def _check_external_inputs(plan: PipePlan, registry: Any) -> None:
    """Inputs the pipe does not produce (config references) must exist before anything is submitted,
    and a model must be in the format its stage loads.

    Only those: the pipe-fed references (``:exp-<id>``) cannot exist yet, and looking a missing
    artifact up is slow (the registry scans the configs to say who would produce it).
    """
    from nemotron.artifacts.add import reference_problem
    from nemotron.pipeline import model_formats

    for stage in plan.to_run:
        assert stage.job is not None
        run = stage.job.train_cfg.get("run") or {}
        for port in stage.step.stage.inputs:
            if port.slot in stage.inputs:
                continue
            ref = run.get(port.slot)
            if not ref:
                if not port.optional:
                    raise UserError(
                        f"{stage.name}: run.{port.slot} is not set and no earlier stage of the pipe makes {port.kind}",
                        hint=f"set {stage.name}.run.{port.slot}=NAME:VERSION"
                        + (" (nemotron artifacts add PATH --name NAME registers one)" if port.external else "")
                        + " or add the producing stage",
                    )
                continue
            try:
                artifact = registry.get(ref)
            except UserError as error:
                raise UserError(f"{stage.name}: {error.message}", hint=error.hint) from None
            if artifact.kind != port.kind:
                raise UserError(f"{stage.name}: run.{port.slot}={ref} is a {artifact.kind}, not {port.kind}")
            backend = stage.job.train_cfg.get("backend", "megatron")
            problem = reference_problem(artifact) or model_formats.check(
                stage.step.stage.name, backend, port.slot, ref, artifact
            )
            if problem:
                raise UserError(f"{stage.name}: {problem}")


def plan_table(plan: PipePlan, pipe_name: str, profile: Any, configs: dict[str, dict[str, Any]] | None = None) -> str:
    """The pipe plan as text: one row per step with what happens and why, its GPU-hours, and the
    dependency graph with the total GPU-hours of what runs."""
    import io

    from rich.console import Console
    from rich.table import Table

    from nemotron.console import PIPED_WIDTH
    from nemotron.launch.estimates import pipe_gpu_hours

    configs = configs or {}
    hours = pipe_gpu_hours([s.step for s in plan.stages], configs, wire([s.step for s in plan.stages]))
    table = Table(title=f"pipe {pipe_name} -> {profile.name}  (experiment {plan.experiment_id})", box=None)
    for column in ("step", "stage", "config", "action", "inputs / artifact", "GPU-h", "why"):
        table.add_column(column, overflow="fold")
    for stage in plan.stages:
        if stage.action == SKIP:
            detail = stage.artifact or ""
        elif stage.action == RUN:
            own = (configs.get(stage.name) or {}).get("run") or {}
            fed = {**{k: v for k, v in own.items() if v and k not in stage.inputs}, **stage.inputs}
            detail = ", ".join(f"{slot}={ref}" for slot, ref in fed.items()) or "-"
        else:
            detail = ""
        estimate = hours.get(stage.name)
        gpu_h = "-" if estimate is None else f"{'~' if estimate.estimated else '<='}{estimate.hours:,.0f}"
        table.add_row(stage.name, stage.step.stage.name, stage.step.config, stage.action, detail, gpu_h, stage.reason)
    buf = io.StringIO()
    width = max(shutil.get_terminal_size((PIPED_WIDTH, 24)).columns, 100)
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    graph = wire([s.step for s in plan.stages])
    buf.write("graph (producer -> step):\n")
    for stage in plan.stages:
        feeds = ", ".join(f"{slot} <- {producer}" for slot, producer in graph[stage.name].items())
        buf.write(f"  {stage.name}" + (f"  [{feeds}]" if feeds else "") + "\n")
    running = [hours[s.name] for s in plan.to_run if hours.get(s.name) is not None]
    if running:
        est = sum(h.hours for h in running if h.estimated)
        cap = sum(h.hours for h in running if not h.estimated)
        buf.write(
            f"total GPU-hours of the steps that run: {est + cap:,.0f} "
            f"(~{est:,.0f} estimated for training at the calculator's MFU, <= {cap:,.0f} from the time limits "
            "of the other GPU steps)\n"
        )
    return buf.getvalue()


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
