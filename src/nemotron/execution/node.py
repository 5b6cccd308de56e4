"""What runs on the node: the stage command inside a small bash wrapper.

The wrapper (a NeMo-Run ``Script``) does three things the stage scripts should not have to:
- writes ``nemotron-state.json`` into the task directory when the stage script starts and ends
  (rank 0 only). Slurm knows a job failed; only this marker tells "the script failed" from "the
  job died before the script started" (bad container, missing directory), and for local runs it
  is the only record of the outcome once the submitting process is gone;
- for the local executor, refuses to start when a dependency did not succeed (NeMo-Run's local
  DAG runs the next level even after a failure; Slurm's ``afterok`` handles this on clusters);
- sets PYTHONPATH to the checkout and ``cd``s there, so ``nemotron`` and ``recipes`` import with
  the node's Python when there is no container.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from nemotron.env.profiles import Profile
from nemotron.execution.job import PreparedJob
from nemotron.execution.records import STATE_FILE
from nemotron.paths import REPO_ROOT
from nemotron.pipeline.stages import FAMILY


@dataclass(frozen=True)
class NodeLayout:
    """Where things are as the node sees them."""

    python: str
    code_dir: str
    train_yaml: str
    task_dir: str


def uses_container(job: PreparedJob, profile: Profile) -> bool:
    return profile.is_slurm and bool(job.resources.get("container"))


def node_python(job: PreparedJob, profile: Profile) -> str:
    """The interpreter on the node: the profile's, the container's ``python``, or this venv's."""
    if profile.python:
        return profile.python
    return "python" if uses_container(job, profile) else sys.executable


def code_dir(profile: Profile) -> str:
    """The nemotron checkout on the node (default: this one, right for a login node/shared home)."""
    return profile.code_dir or str(REPO_ROOT)


def launcher(job: PreparedJob) -> str:
    """``torchrun`` only for the GPU backend; the CPU stand-ins (``backend: tiny``) run plain python."""
    if job.train_cfg.get("backend", "megatron") != "megatron":
        return "python"
    return job.stage.launcher


def stage_command(job: PreparedJob, layout: NodeLayout) -> list[str]:
    """``python recipes/super3/<script> --config <train.yaml>`` (an absolute script path is kept)."""
    script = Path(layout.code_dir) / "recipes" / FAMILY / job.stage.script
    return [layout.python, str(script), "--config", layout.train_yaml]


def stage_shell(job: PreparedJob, layout: NodeLayout) -> list[str]:
    """The task's shell lines: for the megatron backend ``nemotron.node.commands.node_command`` (the
    node preflight, then torchrun / the Ray launcher, one task per node), else :func:`stage_command`.
    """
    from nemotron.node.commands import has_preflight, node_command

    plain = Path(job.stage.script).is_absolute()  # a given script (nemotron doctor, tests) runs as is
    if plain or job.train_cfg.get("backend") != "megatron" or not has_preflight(job.stage):
        return [" ".join(shlex.quote(part) for part in stage_command(job, layout))]
    command = node_command(
        job.stage, job.train_cfg, train_yaml=layout.train_yaml, code_root=layout.code_dir, python=layout.python
    )
    return command.shell().splitlines()


def wrapper_script(
    job: PreparedJob,
    layout: NodeLayout,
    *,
    local: bool,
    dependency_task_dirs: list[str] | None = None,
) -> str:
    """The bash body of the NeMo-Run Script for ``job``."""
    q = shlex.quote
    state = f"{layout.task_dir}/{STATE_FILE}"
    rank = "0" if local else "${RANK:-${SLURM_PROCID:-0}}"
    *setup, cmd = stage_shell(job, layout)  # setup lines (the node preflight first) must all pass
    lines = [
        "set -uo pipefail",
        f"__nm_state={q(state)}",
        f'__nm_rank="{rank}"',
        "__nm_write() {",
        '  [ "$__nm_rank" = 0 ] || return 0',
        '  printf \'%s\\n\' "$1" > "$__nm_state.tmp.$$" && mv -f "$__nm_state.tmp.$$" "$__nm_state"',
        "}",
    ]
    for dep_dir in dependency_task_dirs or []:
        dep_state = q(f"{dep_dir}/{STATE_FILE}")
        lines += [
            f'if ! grep -q \'"state": "SUCCEEDED"\' {dep_state} 2>/dev/null; then',
            f"  echo {q(f'nemotron: not starting {job.stage.name}: a stage it depends on did not succeed')} >&2",
            '  __nm_write "{\\"state\\": \\"CANCELLED\\", \\"reason\\": \\"DependencyNeverSatisfied\\", '
            '\\"ended\\": $(date +%s.%N)}"',
            "  exit 3",
            "fi",
        ]
    lines += [
        "__nm_started=$(date +%s.%N)",
        '__nm_meta="\\"host\\": \\"$(hostname)\\", \\"pid\\": $$, \\"slurm_job_id\\": \\"${SLURM_JOB_ID:-}\\", '
        '\\"started\\": $__nm_started"',
        '__nm_write "{\\"state\\": \\"RUNNING\\", $__nm_meta}"',
        f'[ "$__nm_rank" = 0 ] && echo "nemotron: {job.stage.name} (job {job.job_id}) starting on $(hostname)"',
        f"cd {q(layout.code_dir)}",
        f'export PYTHONPATH={q(layout.code_dir + "/src")}:{q(layout.code_dir)}"${{PYTHONPATH:+:$PYTHONPATH}}"',
        "__nm_task() {",
        *(f"  {line} || return $?" for line in setup),
        f"  {cmd}",
        "}",
        "__nm_task",
        "__nm_rc=$?",
        'if [ "$__nm_rc" = 0 ]; then __nm_final=SUCCEEDED; else __nm_final=FAILED; fi',
        '__nm_write "{\\"state\\": \\"$__nm_final\\", \\"exit_code\\": $__nm_rc, $__nm_meta, '
        '\\"ended\\": $(date +%s.%N)}"',
        f'[ "$__nm_rank" = 0 ] && echo "nemotron: {job.stage.name} finished: $__nm_final (exit code $__nm_rc)"',
        'exit "$__nm_rc"',
    ]
    return "\n".join(lines) + "\n"
