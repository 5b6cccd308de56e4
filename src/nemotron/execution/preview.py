"""The exact sbatch script a submission would use, from NeMo-Run's own dry-run path.

The experiment is built exactly as ``submit`` builds it (same executor, same wrapper, same task
names and paths), then ``Experiment.dryrun`` materializes the script. NeMo-Run writes its dry-run
files into a throw-away ``base_dir``, so previewing never touches the real experiment directory;
the script's paths still name the real locations because they come from the tunnel's job dir.
For local profiles there is no script: the preview is the command line the node wrapper runs.
"""

from __future__ import annotations

import os
import shlex
import tempfile

from nemotron.env.profiles import Profile
from nemotron.env.secrets import scrub_text
from nemotron.execution.executors import build_executor, build_task, node_layout, placement, task_env, task_name
from nemotron.execution.job import PreparedJob
from nemotron.execution.node import stage_command, stage_shell, wrapper_script


def _secret_values(job: PreparedJob, profile: Profile) -> list[str]:
    values = list(profile.secret_env().values())
    values += [os.environ[n] for n in job.secret_env_names if os.environ.get(n)]
    return values


def sbatch_preview(job: PreparedJob, profile: Profile) -> str:
    """The sbatch script for ``job`` on ``profile`` (or, for local profiles, the command line)."""
    where = placement(job.experiment_id, profile)
    task = task_name(job)
    layout = node_layout(job, profile, where, task)
    secrets = _secret_values(job, profile)
    if not profile.is_slurm:
        env = task_env(job, profile)
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
        cmd = " ".join(shlex.quote(p) for p in stage_command(job, layout))
        text = (
            f"# local executor: NeMo-Run runs this in a wrapper that records {task}'s state\n"
            f"cd {shlex.quote(layout.code_dir)} && \\\n"
            f"  PYTHONPATH={shlex.quote(layout.code_dir + '/src')}:{shlex.quote(layout.code_dir)} \\\n"
            f"  {assignments} \\\n"
            f"  {cmd}\n"
        )
        return scrub_text(text, secrets)

    from nemotron.execution.nemorun import nemo_run
    from nemotron.execution.records import TITLE, nemo_experiment_id

    run = nemo_run()
    executor = build_executor(run, job, profile, where)
    if job.depends_on:
        # the real ids exist only after the dependencies are submitted: name them instead
        executor.dependencies = [f"slurm_tunnel://nemo_run/<{d}>" for d in job.depends_on]
    body = wrapper_script(job, layout, local=False)
    with tempfile.TemporaryDirectory(prefix="nemotron-preview-") as base:
        exp = run.Experiment(
            TITLE,
            id=nemo_experiment_id(job.experiment_id),
            base_dir=base,
            clean_mode=True,
            enable_goodbye_message=False,
            log_level="WARN",
        )
        with exp:
            exp.add(build_task(run, body), executor=executor, name=task)
            exp.dryrun(log=False, delete_exp_dir=True)
            info = exp.jobs[0]._dryrun_info
            script = info.request.materialize()
    task_lines = "\n".join(stage_shell(job, layout))
    script += f"\n# {task}.sh: each task runs (after recording its state):\n{task_lines}\n"
    return scrub_text(script, secrets)
