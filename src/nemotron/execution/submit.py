"""Submit prepared jobs as one NeMo-Run experiment; optionally stay attached until they finish.

NeMo-Run does the submission (executor -> sbatch script, ``--dependency=afterok`` between tasks,
rsync over SSH, the local process runner); we keep the parts it gets wrong for a CLI:
``exp.run()`` returns normally when a task failed, and its status view has no exit codes or
Slurm reasons. So after submitting we record the experiment (``records``) and follow it ourselves
(``monitor``), and the exit code is 1 when any stage did not succeed.

Secrets never enter an executor (NeMo-Run writes executor env vars into the sbatch script and
echoes them in the batch log). They reach the job through the submitting environment: sbatch
exports it (``--export=ALL`` is Slurm's default) and the local runner inherits it; over SSH they
are exported inline on the channel that runs ``sbatch``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.env.profiles import Profile
from nemotron.env.secrets import scrub_text
from nemotron.errors import UserError
from nemotron.execution import states as st
from nemotron.execution.duplicates import plan_key
from nemotron.execution.executors import (
    Placement,
    build_executor,
    build_task,
    node_layout,
    placement,
    refuse_gpu_jobs_on_local,
    slurm_job_name,
    task_name,
)
from nemotron.execution.job import PreparedJob
from nemotron.execution.monitor import Follower, Write, failure_report, log_path, stdout_write
from nemotron.execution.node import wrapper_script
from nemotron.execution.records import TITLE, ExperimentRecord, JobRecord, nemo_experiment_id
from nemotron.execution.shell import LocalShell, Shell, connect_tunnel, shell_for


@dataclass
class JobOutcome:
    stage: str
    job_id: str
    native_id: str  # Slurm job id ("" for local runs)
    state: str  # SUBMITTED when detached, else a final state from nemotron.execution.states
    exit_code: int | None = None
    reason: str = ""
    log: str | None = None


@dataclass
class SubmitResult:
    experiment_id: str
    detached: bool
    jobs: list[JobOutcome] = field(default_factory=list)
    exit_code: int = 0  # 0: all succeeded (or all submitted, detached); 1: a stage failed; 130: interrupted
    record: Path | None = None

    @property
    def failed(self) -> list[JobOutcome]:
        return [j for j in self.jobs if j.state in st.BAD]


def submit(
    jobs: list[PreparedJob],
    profile: Profile,
    *,
    detach: bool,
    write: Write = stdout_write,
    interval: float = 1.0,
) -> SubmitResult:
    """Submit ``jobs`` (one experiment; ``depends_on`` -> afterok) to ``profile``'s executor.

    Attached (``detach=False``): streams the jobs' log lines through ``write`` and returns when all
    of them are done, with final states and ``exit_code`` 1 if any failed. Detached: returns right
    after submission (Slurm only) and prints how to follow the experiment.
    """
    _validate(jobs)
    refuse_gpu_jobs_on_local(jobs, profile)
    if detach and not profile.is_slurm:
        raise UserError(
            f"profile '{profile.name}' runs jobs locally, which cannot be detached",
            hint="use --run to stay attached, or a slurm profile for --batch",
        )
    experiment_id = jobs[0].experiment_id
    from nemotron.execution.nemorun import nemo_run

    run = nemo_run()
    where = placement(experiment_id, profile)
    if os.path.exists(where.local_exp_dir):
        raise UserError(f"experiment {experiment_id} was already submitted ({where.local_exp_dir})")
    secrets = _secret_values(jobs, profile, write)
    record = _new_record(jobs, profile, where)
    exp = run.Experiment(
        TITLE,
        id=nemo_experiment_id(experiment_id),
        clean_mode=True,
        enable_goodbye_message=False,
        log_level="WARN",
        skip_status_at_exit=True,
        threadpool_workers=4,
        # NeMo-Run would also write YAML copies of every executor and script (~25 ms each, twice per
        # job); job.yaml/train.yaml and our record already say what ran
        serialize_metadata_for_scripts=False,
    )
    if profile.is_slurm:
        _submit_slurm(run, exp, jobs, profile, where, record, secrets)
        result = SubmitResult(experiment_id, detached=detach, record=record.path)
        if detach:
            _print_detached(record, profile, write)
            result.jobs = [JobOutcome(j.stage, j.job_id, j.native_id, "SUBMITTED") for j in record.jobs]
            return result
        shell: Shell = shell_for(record.profile)
        follower = Follower(record, shell, write=write, secrets=list(secrets.values()))
        _print_where(record, write)
        try:
            statuses = follower.follow(interval=interval)
        except KeyboardInterrupt:
            write(
                f"\nnemotron: detached; the jobs keep running. Follow: nemotron logs {experiment_id} --follow"
                f"  Cancel: nemotron cancel {experiment_id}\n"
            )
            result.exit_code = 130
            return result
        return _finish(result, record, statuses, shell, write)
    return _run_local(run, exp, jobs, profile, where, record, secrets, write, interval)


# ----------------------------------------------------------------------------------------- slurm


def _submit_slurm(
    run: Any,
    exp: Any,
    jobs: list[PreparedJob],
    profile: Profile,
    where: Placement,
    record: ExperimentRecord,
    secrets: dict[str, str],
) -> None:
    ssh = profile.tunnel == "ssh"
    with exp:
        _add_jobs(run, exp, jobs, profile, where, local=False)
        if ssh:
            _preconnect(exp)
        try:
            with _secrets_for_submission(run, secrets, ssh=ssh):
                exp.run(detach=True)
        except Exception as exc:  # sbatch refused a job (bad partition, account, time limit, ...)
            submitted = _native_ids(exp)
            if submitted:  # do not leave half an experiment behind
                shell_for(record.profile).run(f"scancel {' '.join(submitted.values())}")
            raise UserError(
                f"submission to '{profile.name}' failed: {_submit_error(exc, list(secrets.values()))}",
                hint="check account/partition/time/nodes against the cluster (sinfo, sacctmgr show assoc)",
            ) from None
        native = _native_ids(exp)
    for rec in record.jobs:
        rec.native_id = native.get(rec.task, "")
    record.save()


def _native_ids(exp: Any) -> dict[str, str]:
    """Task name -> Slurm job id, parsed from NeMo-Run handles ``slurm_tunnel://nemo_run/<id>``."""
    out = {}
    for job in exp.jobs:
        handle = getattr(job, "handle", "") or ""
        if job.launched and handle:
            out[job.id] = handle.rstrip("/").rsplit("/", 1)[-1]
    return out


def _preconnect(exp: Any) -> None:
    """Connect SSH tunnels up front so a bad key is a clean UserError, not NeMo-Run's sys.exit."""
    for job in exp.jobs:
        tunnel = getattr(job.executor, "tunnel", None)
        if tunnel is not None and tunnel.__class__.__name__ == "SSHTunnel":
            connect_tunnel(tunnel)
            tunnel.cleanup()
            break


def _submit_error(exc: BaseException, secrets: list[str]) -> str:
    """The line of sbatch's/rsync's stderr that explains the failure (secrets scrubbed)."""
    result = getattr(exc, "result", None)
    text = (getattr(result, "stderr", "") or getattr(result, "stdout", "") or str(exc)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("Host key verification failed" in ln for ln in lines):
        return (
            "the cluster's SSH host key is not in ~/.ssh/known_hosts (NeMo-Run's rsync checks it); "
            "ssh to the host once and accept its key"
        )
    pick = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else type(exc).__name__)
    return scrub_text(pick, secrets)


@contextlib.contextmanager
def _secrets_for_submission(run: Any, secrets: dict[str, str], *, ssh: bool) -> Iterator[None]:
    """Make secrets visible to sbatch for the duration of the submission only."""
    if not secrets:
        yield
        return
    if not ssh:
        saved = {k: os.environ.get(k) for k in secrets}
        os.environ.update(secrets)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return
    # Over SSH the remote sbatch sees the remote login environment: export the secrets inline on
    # the channel that runs sbatch (not written to any file, not part of NeMo-Run's records).
    cls = run.SSHTunnel
    original = cls.run
    prefix = " ".join(f"export {k}={shlex.quote(v)};" for k, v in secrets.items())

    def run_with_secrets(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if command.lstrip().startswith("sbatch"):
            command = f"{prefix} {command}"
        return original(self, command, *args, **kwargs)

    cls.run = run_with_secrets
    try:
        yield
    finally:
        cls.run = original


# ----------------------------------------------------------------------------------------- local


def _run_local(
    run: Any,
    exp: Any,
    jobs: list[PreparedJob],
    profile: Profile,
    where: Placement,
    record: ExperimentRecord,
    secrets: dict[str, str],
    write: Write,
    interval: float,
) -> SubmitResult:
    """Local executor: NeMo-Run runs the DAG in a thread (it blocks), we follow from this one."""
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            with exp:
                _add_jobs(run, exp, jobs, profile, where, local=True)
                exp.run(detach=False)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    import socket

    record.runner = {"host": socket.gethostname(), "pid": os.getpid()}
    shell = LocalShell()
    follower = Follower(record, shell, write=write, secrets=list(secrets.values()))
    _print_where(record, write)
    result = SubmitResult(record.experiment_id, detached=False, record=record.path)
    with _secrets_for_submission(run, secrets, ssh=False):
        thread = threading.Thread(target=runner, name="nemotron-local-runner", daemon=True)
        thread.start()

        def runner_alive() -> bool:
            # NeMo-Run insists on creating the experiment directory itself: record once it exists
            if not record.path.exists() and os.path.isdir(record.exp_dir):
                record.save()
            return thread.is_alive()

        try:
            statuses = follower.follow(interval=min(interval, 0.5), runner_alive=runner_alive)
        except KeyboardInterrupt:
            _kill_local(record, shell)
            thread.join(timeout=30)
            write(f"\nnemotron: interrupted; stopped the running stage of {record.experiment_id}\n")
            result.exit_code = 130
            return result
        thread.join()
    if errors:
        raise errors[0]
    native = _native_ids(exp)  # the local scheduler's app ids (local_persistent://nemo_run/<id>)
    for rec in record.jobs:
        rec.native_id = native.get(rec.task, "")
    record.save()
    return _finish(result, record, statuses, shell, write)


def _kill_local(record: ExperimentRecord, shell: Shell) -> None:
    """Stop local jobs that are running: SIGTERM to the process group their wrapper leads."""
    import signal

    for job in record.jobs:
        marker = st.read_marker(shell, job)
        if marker and marker.get("state") == st.RUNNING and marker.get("pid"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(marker["pid"]), signal.SIGTERM)


# ---------------------------------------------------------------------------------------- shared


def _validate(jobs: list[PreparedJob]) -> None:
    if not jobs:
        raise ValueError("submit() needs at least one job")
    experiments = {j.experiment_id for j in jobs}
    if len(experiments) != 1:
        raise ValueError(f"jobs of one submit() must share an experiment id, got {sorted(experiments)}")
    seen: set[str] = set()
    for job in jobs:
        missing = [d for d in job.depends_on if d not in seen]
        if missing:
            raise ValueError(f"{job.job_id} depends on {missing}, which are not earlier jobs of this submit()")
        seen.add(job.job_id)


def _task_names(jobs: list[PreparedJob]) -> list[str]:
    names: list[str] = []
    for job in jobs:
        name = task_name(job)
        if name in names:
            name = f"{name}-{len(names)}"
        names.append(name)
    return names


def _new_record(jobs: list[PreparedJob], profile: Profile, where: Placement) -> ExperimentRecord:
    summary = {
        "name": profile.name,
        "executor": profile.executor,
        "tunnel": profile.tunnel if profile.is_slurm else "local",
        "host": profile.host,
        "user": profile.user,
        "port": profile.port,
        "identity": profile.identity,
        "remote_job_dir": profile.remote_job_dir,
    }
    record = ExperimentRecord(
        experiment_id=jobs[0].experiment_id,
        nemo_id=nemo_experiment_id(jobs[0].experiment_id),
        created=time.time(),
        executor=profile.executor,
        profile=summary,
        exp_dir=where.local_exp_dir,
        plan_key=plan_key(jobs, profile.name),
    )
    for job, task in zip(jobs, _task_names(jobs), strict=True):
        job_cfg = job.train_cfg.get("job", {})
        record.jobs.append(
            JobRecord(
                stage=job.stage.name,
                job_id=job.job_id,
                task=task,
                job_dir=str(job.job_dir),
                task_dir=where.node_task_dir(task),
                local_task_dir=where.local_task_dir(task),
                depends_on=list(job.depends_on),
                job_name=slurm_job_name(task),
                output_name=str(job.train_cfg.get("output", {}).get("name", "")),
                output_dir=str(job_cfg.get("output_dir", "")),
            )
        )
    return record


def _add_jobs(run: Any, exp: Any, jobs: list[PreparedJob], profile: Profile, where: Placement, *, local: bool) -> None:
    names = _task_names(jobs)
    by_job_id = dict(zip((j.job_id for j in jobs), names, strict=True))
    for job, task in zip(jobs, names, strict=True):
        layout = node_layout(job, profile, where, task)
        deps = [by_job_id[d] for d in job.depends_on]
        body = wrapper_script(
            job,
            layout,
            local=local,
            dependency_task_dirs=[where.node_task_dir(d) for d in deps] if local else None,
        )
        exp.add(
            build_task(run, body),
            executor=build_executor(run, job, profile, where, task),
            name=task,
            dependencies=deps or None,
        )


def _secret_values(jobs: list[PreparedJob], profile: Profile, write: Write) -> dict[str, str]:
    """Secret name -> value: the submitting environment first, then env.toml's profile env_vars."""
    names = sorted({*profile.secret_env_names(), *(n for j in jobs for n in j.secret_env_names)})
    from_file = profile.secret_env()
    values: dict[str, str] = {}
    missing = []
    for name in names:
        value = os.environ.get(name) or from_file.get(name)
        if value:
            values[name] = value
        else:
            missing.append(name)
    if missing:
        write(f"nemotron: warning: {', '.join(missing)} not set; the job will run without it\n")
    return values


def _print_where(record: ExperimentRecord, write: Write) -> None:
    write(f"nemotron: experiment {record.experiment_id} ({record.profile['name']}): {len(record.jobs)} job(s)\n")
    for job in record.jobs:
        native = f" slurm job {job.native_id}," if job.native_id else ""
        write(f"nemotron:   {job.stage}:{native} logs in {job.task_dir}\n")


def _print_detached(record: ExperimentRecord, profile: Profile, write: Write) -> None:
    write(f"Submitted experiment {record.experiment_id} to {profile.describe()}\n")
    stage_of = {j.job_id: j.stage for j in record.jobs}
    for job in record.jobs:
        after = f" (after {', '.join(stage_of.get(d, d) for d in job.depends_on)})" if job.depends_on else ""
        write(f"  {job.stage:<20} slurm job {job.native_id}{after}\n")
        if job.native_id:  # where its output lands (a requeue starts ..._1.out; `nemotron logs` follows it)
            write(f"  {'':<20} log: {job.slurm_log(0)}\n")
    write(f"Follow:  nemotron logs {record.experiment_id} --follow\n")
    write(f"Status:  nemotron status {record.experiment_id}\n")
    write(f"Cancel:  nemotron cancel {record.experiment_id}\n")


def _finish(
    result: SubmitResult,
    record: ExperimentRecord,
    statuses: dict[str, st.JobStatus],
    shell: Shell,
    write: Write,
) -> SubmitResult:
    from nemotron.execution.report import status_table

    for job in record.jobs:
        status = statuses[job.job_id]
        result.jobs.append(
            JobOutcome(
                stage=job.stage,
                job_id=job.job_id,
                native_id=job.native_id,
                state=status.state,
                exit_code=status.exit_code,
                reason=status.reason,
                log=log_path(record, job, shell),
            )
        )
    for job in record.jobs:
        report = failure_report(record, job, statuses[job.job_id], shell, statuses)
        if report:
            write(report + "\n")
    write(status_table(record, statuses))
    result.exit_code = 1 if result.failed or any(j.state != st.SUCCEEDED for j in result.jobs) else 0
    shell.close()
    return result
