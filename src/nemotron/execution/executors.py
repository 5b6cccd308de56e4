"""Turn a PreparedJob + Profile into a NeMo-Run executor and task.

Resources (nodes, gpus_per_node, ntasks_per_node, time, container) come from the job's resolved
config — the profile's own values were merged into it as overrides — and cluster placement
(account, partition, qos, tunnel, mounts, env) from the profile. Secrets never enter an executor:
NeMo-Run writes executor env vars into the sbatch script; secrets travel in the submitting
process's environment instead (see ``submit``).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.env.profiles import Profile
from nemotron.env.secrets import is_secret_name
from nemotron.errors import UserError
from nemotron.execution.job import PreparedJob
from nemotron.execution.node import NodeLayout, code_dir, launcher, node_python, uses_container
from nemotron.execution.records import TITLE, nemo_experiment_id
from nemotron.paths import nemorun_home, nemotron_home
from nemotron.pipeline.stages import Stage

JOB_NAME_SUFFIX = ".nemotron"  # the stage leads the Slurm job name: default squeue shows its first 8 characters


@dataclass(frozen=True)
class Placement:
    """Where an experiment's NeMo-Run directories are, for the submit side and for the node."""

    local_exp_dir: str
    node_exp_dir: str

    def local_task_dir(self, task: str) -> str:
        return os.path.join(self.local_exp_dir, task)

    def node_task_dir(self, task: str) -> str:
        return os.path.join(self.node_exp_dir, task)


def local_gpu_problem(stage: Stage, train_cfg: dict[str, Any], profile: Profile) -> str | None:
    """Why the local executor cannot run this stage, or ``None`` when it can.

    The megatron backend is GPU-only: its libraries live in the stage container, which the local
    executor does not start, so it would launch ``gpus_per_node`` torchrun workers that each die on
    ``import megatron.bridge``. Refusing before anything starts is one line instead of hundreds.
    """
    from nemotron.node.preflight import STAGE_LIBRARIES, stage_root

    # data prep says ``backend: megatron`` too (Megatron's data format), but runs on CPUs
    if profile.is_slurm or train_cfg.get("backend") != "megatron" or stage_root(stage.name) not in STAGE_LIBRARIES:
        return None
    res = train_cfg.get("resources") or {}
    gpus = int(res.get("nodes") or 1) * int(res.get("gpus_per_node") or 0)
    where = f" on {gpus} GPUs" if gpus else ""
    container = f" in {res['container']}" if res.get("container") else ""
    return (
        f"stage '{stage.display}' runs the megatron (GPU) backend{where}{container}, "
        f"which the local executor (profile '{profile.name}') cannot run"
    )


LOCAL_GPU_HINT = "use -c tiny for the CPU stand-in, or --run/--batch PROFILE with a slurm profile"


def refuse_gpu_jobs_on_local(jobs: list[PreparedJob], profile: Profile) -> None:
    """Raise ``UserError`` (exit 2) for the first job the local executor cannot run."""
    for job in jobs:
        problem = local_gpu_problem(job.stage, job.train_cfg, profile)
        if problem:
            raise UserError(problem, hint=LOCAL_GPU_HINT)


def placement(experiment_id: str, profile: Profile) -> Placement:
    """NeMo-Run puts experiment ``<title>_<id>`` under ``<base>/<title>/``; mirror that here."""
    nemo_id = nemo_experiment_id(experiment_id)
    local = os.path.join(str(nemorun_home()), "experiments", TITLE, nemo_id)
    if profile.is_slurm and profile.tunnel == "ssh":
        assert profile.remote_job_dir
        return Placement(local, os.path.join(profile.remote_job_dir, TITLE, nemo_id))
    return Placement(local, local)


def task_name(job: PreparedJob) -> str:
    """NeMo-Run task name, which is also the Slurm job name: the stage, readable in the 8 characters
    default ``squeue`` shows (``pretrain``, ``sft``, ``rl-rlvr``, ``prep-sft``), dots made safe."""
    name = job.stage.name
    if name.startswith("data_prep."):
        name = "prep-" + name.split(".", 1)[1]
    return name.replace(".", "-")


def node_layout(job: PreparedJob, profile: Profile, where: Placement, task: str) -> NodeLayout:
    task_dir = where.node_task_dir(task)
    ssh = profile.is_slurm and profile.tunnel == "ssh"
    # Over SSH the submit-side job dir does not exist on the cluster: NeMo-Run's packager puts the
    # job dir into the task's code/ directory, which it rsyncs to remote_job_dir.
    train_yaml = f"{task_dir}/code/{Path(job.job_dir).name}/{Path(job.train_yaml).name}" if ssh else str(job.train_yaml)
    return NodeLayout(
        python=node_python(job, profile), code_dir=code_dir(profile), train_yaml=train_yaml, task_dir=task_dir
    )


def task_env(job: PreparedJob, profile: Profile) -> dict[str, str]:
    """Non-secret environment for the task (profile env_vars, the job's env, nemotron ids)."""
    env = {k: v for k, v in {**profile.public_env(), **job.env}.items() if not is_secret_name(k)}
    env.update(
        {
            "NEMOTRON_JOB_ID": job.job_id,
            "NEMOTRON_EXPERIMENT_ID": job.experiment_id,
            "NEMOTRON_STAGE": job.stage.name,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not (profile.is_slurm and profile.tunnel == "ssh"):
        env.setdefault("NEMOTRON_HOME", str(nemotron_home()))
    return env


def container_mounts(job: PreparedJob, profile: Profile, where: Placement) -> list[str]:
    """Profile mounts plus same-path mounts of what the job reads and writes on shared storage."""
    mounts = list(profile.container_mounts)
    paths = [code_dir(profile), where.node_exp_dir]
    if not (profile.is_slurm and profile.tunnel == "ssh"):
        job_cfg = job.train_cfg.get("job", {})
        paths += [str(nemotron_home()), str(job.job_dir)]
        paths += [str(Path(p).parent) for p in (job_cfg.get("output_dir"), job_cfg.get("artifacts_root")) if p]
    targets = {m.split(":")[1] if ":" in m else m for m in mounts}
    for path in sorted(set(paths), key=len):  # parents first, so children are covered
        if path not in targets and not any(path.startswith(t.rstrip("/") + "/") for t in targets):
            mounts.append(f"{path}:{path}")
            targets.add(path)
    return mounts


def slurm_job_name(task: str) -> str:
    """``pretrain.nemotron``, ``prep-sft.nemotron``: the stage first, so ``squeue`` shows which stage runs."""
    return f"{task}{JOB_NAME_SUFFIX}"


def build_executor(run: Any, job: PreparedJob, profile: Profile, where: Placement, task: str | None = None) -> Any:
    """A ``run.SlurmExecutor`` or ``run.LocalExecutor`` for ``job`` (``task``: its NeMo-Run task name)."""
    res = job.resources
    env = task_env(job, profile)
    # megatron stages run nemotron.node.commands.node_command in one task per node: the node preflight
    # first, then torchrun / the Ray launcher fan out themselves (NeMo-Run's torchrun launcher would
    # start the workers before anything could check the container)
    use_torchrun = launcher(job) == "torchrun" and not profile.is_slurm
    ntasks = int(res.get("ntasks_per_node") or 1)
    if not profile.is_slurm:
        return run.LocalExecutor(
            env_vars=env,
            ntasks_per_node=ntasks if not use_torchrun else max(int(res.get("gpus_per_node") or 1), 1),
            launcher="torchrun" if use_torchrun else None,
        )
    if profile.tunnel == "ssh":
        tunnel = run.SSHTunnel(
            host=profile.host,
            user=profile.user,
            port=profile.port,
            identity=profile.identity,
            job_dir=profile.remote_job_dir,
        )
    else:
        tunnel = run.LocalTunnel(job_dir=os.path.join(str(nemorun_home()), "experiments"))
    gpus = res.get("gpus_per_node")
    extra: dict[str, Any] = {}
    extra.update(profile.sbatch)  # the profile's own sbatch flags (mem, exclusive, constraint, reservation, ...)
    if job.depends_on:
        # a failed dependency cancels this job instead of leaving it pending forever
        extra["kill_on_invalid_dep"] = "yes"
    container = res.get("container") if uses_container(job, profile) else None
    if launcher(job) == "torchrun" and int(res.get("nodes") or 1) > 1:
        # the rendezvous host, resolved where scontrol exists (the batch step, not the container)
        extra_setup = 'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'
    else:
        extra_setup = None
    return run.SlurmExecutor(
        account=profile.account or "",
        partition=profile.partition,
        qos=profile.qos,
        nodes=int(res.get("nodes") or 1),
        ntasks_per_node=ntasks,
        gpus_per_node=int(gpus) if gpus else None,
        cpus_per_task=res.get("cpus_per_task"),
        time=str(res.get("time") or "04:00:00"),
        container_image=container,
        container_mounts=container_mounts(job, profile, where) if container else [],
        # NeMo-Run writes `export KEY=VALUE` verbatim into the sbatch script: quote the values
        env_vars={k: shlex.quote(v) for k, v in env.items()},
        tunnel=tunnel,
        packager=_packager(run, job, profile),
        # NeMo-Run would name the job <prefix><task> with "<account>-..." as the default prefix; naming
        # it ourselves keeps the stage first (nemo_run 0.11.1 core/execution/slurm.py: an empty
        # job_details.job_name is replaced by the prefixed task name, a set one is kept)
        job_details=_job_details(slurm_job_name(task or task_name(job))),
        comment=f"nemotron {job.experiment_id} {job.stage.name}",
        additional_parameters=extra or None,
        setup_lines=extra_setup,
        poll_estimated_start_time=False,
    )


def _job_details(name: str) -> Any:
    from nemo_run.core.execution.slurm import SlurmJobDetails

    return SlurmJobDetails(job_name=name)


def _packager(run: Any, job: PreparedJob, profile: Profile) -> Any:
    """Local tunnel: nothing to copy (shared filesystem). SSH: ship the job dir (train.yaml)."""
    if profile.tunnel != "ssh":
        return run.Packager()
    from nemo_run.core.packaging.pattern import PatternPackager

    job_dir = Path(job.job_dir)
    return PatternPackager(include_pattern=str(job_dir), relative_path=str(job_dir.parent))


def build_task(run: Any, script_body: str) -> Any:
    return run.Script(inline=script_body, entrypoint="bash")
