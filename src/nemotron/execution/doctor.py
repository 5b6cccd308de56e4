"""``nemotron doctor PROFILE``: every GPU stage's node preflight, on the cluster, before the first big submit.

Why: the first real job of a cluster user is hundreds of GPU-hours; a wrong container, missing GPUs or
an output directory the nodes cannot write should show up in a minute as one table instead. Each GPU
stage (its default config, with the profile's overrides) becomes a short 1-node job through the same
execution path as the stage itself (``submit``, same container, mounts and environment), whose task
runs ``nemotron.node.preflight`` in report mode. The reports are collected into one table; a job that
died before its preflight could run (the container did not start, no such partition) is a row too.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

DOCTOR_STAGES = ("pretrain", "sft", "quantize", "rl.rlvr", "eval")
"""One stage per container and entry: SFT LoRA and the other RL stages share these containers and checks."""
DOCTOR_TIME = "00:10:00"
REPORT = "preflight.json"


@dataclass
class StageReport:
    stage: str
    container: str | None
    state: str  # the job's final state
    checks: list[dict[str, Any]]  # preflight rows (name, ok, detail); empty when the job died first
    problem: str = ""  # why there are no rows

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)


def prepare_doctor_jobs(profile: Any, env_file: Any, stages: tuple[str, ...] = DOCTOR_STAGES) -> list[Any]:
    """One 1-node preflight job per stage: the stage's job (container, GPUs, mounts) running the preflight."""
    from nemotron.config.loader import load_stage_config
    from nemotron.launch.prepare import new_experiment_id, prepare_job
    from nemotron.paths import REPO_ROOT, jobs_root
    from nemotron.pipeline.stages import get_stage

    experiment_id = new_experiment_id("doctor")
    script = REPO_ROOT / "src" / "nemotron" / "node" / "preflight.py"
    jobs = []
    for name in stages:
        stage = get_stage(name)
        resolved = load_stage_config(
            stage, None, profile_overrides=profile.config_overrides, profile_name=profile.name, cli_overrides=None
        )
        resolved.data["resources"] = {**resolved.data["resources"], "nodes": 1, "time": DOCTOR_TIME}
        # the report goes next to the job files, not among the stage's real outputs
        root = Path(profile.job_dir).expanduser() if getattr(profile, "job_dir", None) else jobs_root()
        resolved.data["output_dir"] = str(root / experiment_id / stage.name / "preflight")
        job = prepare_job(
            resolved,
            experiment_id=experiment_id,
            profile=profile,
            env_file=env_file,
            argv=["nemotron", "doctor", profile.name],
            cli_overrides={},
        )
        # the job's task: the preflight itself (an absolute script runs as is, one process per node)
        doctor_stage = dataclasses.replace(stage, script=str(script), launcher="python")
        env = {**job.env, "NEMOTRON_PREFLIGHT_DOCTOR": "1"}
        jobs.append(dataclasses.replace(job, stage=doctor_stage, env=env))
    return jobs


def _last_log_line(path: str | None) -> str:
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()] if path else []
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def collect(jobs: list[Any], outcomes: dict[str, Any]) -> list[StageReport]:
    """Each job's preflight rows, or why it has none (state, reason, the last line of its log)."""
    reports = []
    for job in jobs:
        path = job.output_dir / REPORT
        container = (job.resources or {}).get("container")
        outcome = outcomes.get(job.job_id)
        state = getattr(outcome, "state", "UNKNOWN")
        try:
            rows = json.loads(path.read_text())["checks"]
            reports.append(StageReport(job.stage.name, container, state, rows))
            continue
        except (OSError, ValueError, KeyError):
            pass
        problem = f"job {state} before the preflight ran"
        if getattr(outcome, "reason", ""):
            problem += f" ({outcome.reason})"
        if container:
            problem += f"; did container {container} start? (containers need Pyxis/enroot on the cluster)"
        last = _last_log_line(getattr(outcome, "log", None))
        if last:
            problem += f"; last log line: {last[:200]}"
        reports.append(StageReport(job.stage.name, container, state, [], problem))
    return reports


def render(reports: list[StageReport], profile_name: str) -> str:
    lines = [f"nemotron doctor {profile_name}: the node preflight of each GPU stage (1 node each)"]
    for rep in reports:
        lines.append("")
        lines.append(f"{rep.stage}  [{rep.container or 'no container'}]  {'ok' if rep.ok else 'PROBLEMS'}")
        if not rep.checks:
            lines.append(f"  FAIL  {rep.problem}")
            continue
        width = max(len(c["name"]) for c in rep.checks)
        for c in rep.checks:
            lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<{width}}  {c['detail']}")
    bad = [r.stage for r in reports if not r.ok]
    lines.append("")
    lines.append(f"problems in: {', '.join(bad)}" if bad else "every stage's preflight passed")
    return "\n".join(lines) + "\n"


def run_doctor(profile_name: str, write: Any = None, stages: tuple[str, ...] = DOCTOR_STAGES) -> int:
    """Submit the preflight jobs attached, print the table; exit 0 when every check passed, else 1."""
    import sys

    from nemotron.env.profiles import load_env
    from nemotron.execution.submit import submit

    out = write or sys.stdout.write
    env_file = load_env()
    profile = env_file.profile(profile_name)
    if not profile.is_slurm:
        raise UserError(
            f"profile '{profile.name}' runs jobs locally, where the GPU stages cannot run",
            hint="nemotron doctor checks a cluster: name a slurm profile from env.toml",
        )
    jobs = prepare_doctor_jobs(profile, env_file, stages)
    out(f"nemotron doctor: {len(jobs)} preflight job(s), one per GPU stage, on profile '{profile.name}'\n")

    def progress(text: str) -> None:  # the per-job tables come at the end, together
        for line in text.splitlines():
            if line.startswith("nemotron:"):
                out(line + "\n")

    result = submit(jobs, profile, detach=False, write=progress)
    reports = collect(jobs, {j.job_id: j for j in result.jobs})
    out(render(reports, profile.name))
    return 0 if all(r.ok for r in reports) else 1
