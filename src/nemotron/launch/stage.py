"""``nemotron super3 <stage>``: resolve, prepare, then plan (dry-run) or submit one stage."""

from __future__ import annotations

import sys
from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage


def select_profile(run_profile: str | None, batch_profile: str | None) -> tuple[str, bool]:
    """Profile name and whether to detach. No profile means the built-in local executor, attached."""
    if run_profile and batch_profile:
        raise UserError("--run and --batch cannot be used together", hint="--run waits for the job, --batch returns")
    return (run_profile or batch_profile or "local"), bool(batch_profile)


def registry_notice(root: Any) -> str | None:
    """The line a first submission prints: where its artifacts will go, before anything is written there."""
    from pathlib import Path

    if Path(root).exists():
        return None
    return (
        f"nemotron: first run with this registry: artifacts go to {root} "
        "(move it with [artifacts] root in env.toml; list them with `nemotron artifacts ls`)\n"
    )


def launch_stage(
    stage: Stage,
    *,
    config: str | None,
    run_profile: str | None,
    batch_profile: str | None,
    dry_run: bool,
    args: list[str],
    passthrough: list[str],
    argv: list[str] | None = None,
    cluster: dict[str, Any] | None = None,
) -> int:
    """Run one stage; returns the process exit code."""
    from nemotron.artifacts.registry import Registry
    from nemotron.config.loader import load_stage_config
    from nemotron.config.overrides import parse_overrides
    from nemotron.env.profiles import load_env
    from nemotron.launch.inputs import check_inputs, first_problem
    from nemotron.launch.path_inputs import register_path_inputs
    from nemotron.launch.prepare import new_experiment_id, prepare_job

    profile_name, detach = select_profile(run_profile, batch_profile)
    cli_overrides = parse_overrides(args)
    env_file = load_env()
    profile = env_file.profile(profile_name).with_cluster_flags(cluster)
    registry = Registry(env_file.artifacts_root)
    cli_overrides = register_path_inputs(stage, cli_overrides, registry, dry_run=dry_run, echo=sys.stderr.write)
    resolved = load_stage_config(
        stage,
        config,
        profile_overrides=profile.config_overrides,
        profile_name=profile.name,
        cli_overrides=cli_overrides,
    )
    from nemotron.execution.executors import LOCAL_GPU_HINT, local_gpu_problem

    check_before_submit(stage.name, resolved.data, registry)
    from nemotron.launch.estimates import absurd_plan_warning

    absurd = absurd_plan_warning(resolved.data)
    if absurd:
        sys.stderr.write(f"warning: {absurd}\n")
    statuses = check_inputs(stage, resolved.data.get("run") or {}, registry, backend=resolved.data.get("backend"))
    problem = first_problem(statuses)
    # An input that exists but cannot be used (wrong format, tampered) is wrong on every executor, so it
    # comes first; a GPU stage on the local executor comes before inputs that are merely not made yet.
    wrong_input = first_problem([s for s in statuses if s.artifact is not None])
    if wrong_input and not dry_run:
        raise UserError(wrong_input)
    local_problem = local_gpu_problem(stage, resolved.data, profile)
    if local_problem and not dry_run:
        raise UserError(local_problem, hint=LOCAL_GPU_HINT)
    if problem and not dry_run:
        raise UserError(problem)
    job = prepare_job(
        resolved,
        experiment_id=new_experiment_id(stage.name),
        profile=profile,
        env_file=env_file,
        argv=argv or ["nemotron", *sys.argv[1:]],
        cli_overrides=cli_overrides,
        dry_run=dry_run,
        passthrough=passthrough,
    )
    if dry_run:
        from nemotron.launch.plan import print_plan

        print_plan(resolved, job, profile, statuses)
        for reason in (local_problem, problem):
            if reason:
                # planning ahead (another profile, upstream stages) is legitimate; submitting now would be refused
                sys.stderr.write(f"warning: submitting now would fail: {reason}\n")
        return 0
    notice = registry_notice(env_file.artifacts_root)
    if notice:
        sys.stderr.write(notice)
    return _submit([job], profile, detach)


def check_before_submit(stage_name: str, data: dict[str, Any], registry: Any) -> None:
    """What the node would otherwise find after the job started (dry-run included): output and data inputs."""
    from nemotron.data_prep.input_checks import check_data_prep_inputs
    from nemotron.launch.outputs import check_output

    check_output(data, registry)
    check_data_prep_inputs(stage_name, data)


def _submit(jobs: list[Any], profile: Any, detach: bool) -> int:
    from nemotron.execution.submit import submit

    result = submit(jobs, profile, detach=detach)
    return int(result.exit_code)
