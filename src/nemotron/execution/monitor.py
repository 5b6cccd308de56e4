"""Follow an experiment: stream its log lines, report state changes, stop when every job is done.

Used by attached ``--run`` and by ``nemotron logs ID --follow``. One loop polls the scheduler
(one sacct call per round for all jobs) and reads only the new bytes of each log; lines of several
jobs are prefixed with ``[stage]``. When a job fails, jobs that depend on it (directly or not) and
are still waiting are cancelled: Slurm clusters without ``kill_invalid_depend`` would otherwise
leave them pending forever with ``DependencyNeverSatisfied``.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nemotron.env.secrets import scrub_text
from nemotron.execution import states as st
from nemotron.execution.records import ExperimentRecord, JobRecord
from nemotron.execution.shell import Shell

Write = Callable[[str], None]

# Pending reasons Slurm will not resolve by waiting (limits the job exceeds, things that do not exist).
HOPELESS_REASONS = frozenset(
    {
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "AssocMaxWallDurationPerJobLimit",
        "AssocMaxNodesPerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "QOSMaxNodePerJobLimit",
        "DependencyNeverSatisfied",
        "PartitionDown",
    }
)

# Lines of a batch log that come from Slurm/srun/pyxis or the shell, not from `set -x` echoes.
_SCHEDULER_MSG = re.compile(
    r"^(?!\+)(?!.*\bsrun --output\b).*(srun:|slurmstepd|sbatch:|pyxis|enroot|error|unrecognized|"
    r"not found|no such file|permission denied|cancelled|killed|oom|timeout)",
    re.IGNORECASE,
)


def stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def restart_count(shell: Shell, job: JobRecord) -> int:
    """The latest attempt of a Slurm job whose log exists (``SLURM_RESTART_COUNT``; 0 before any requeue)."""
    res = shell.run(f"ls -1 -- {shlex.quote(job.task_dir)} 2>/dev/null", timeout=30)
    counts = [0]
    prefix = job.slurm_log_prefix
    for name in res.stdout.split():
        count = name[len(prefix) : -len(".out")] if name.startswith(prefix) and name.endswith(".out") else ""
        if count.isdigit():
            counts.append(int(count))
    return max(counts)


def slurm_log(shell: Shell, job: JobRecord) -> str:
    """The srun log of the job's latest attempt (a requeue starts ``..._1.out``, and so on)."""
    return job.slurm_log(restart_count(shell, job))


def log_path(record: ExperimentRecord, job: JobRecord, shell: Shell | None = None) -> str | None:
    """The file holding what the stage script printed (its latest attempt's, on Slurm)."""
    if record.is_slurm:
        if not job.native_id:
            return None
        from nemotron.execution.shell import LocalShell

        return slurm_log(shell or LocalShell(), job)
    # the local scheduler writes <task_dir>/nemo_run/<app id>/<role>/0/combined.log
    found = sorted(glob.glob(os.path.join(job.task_dir, "nemo_run", "*", "*", "0", "combined.log")))
    return found[-1] if found else None


def tail_text(shell: Shell, path: str | None, lines: int = 20) -> str:
    if not path:
        return ""
    res = shell.run(f"tail -n {lines} {shlex.quote(path)} 2>/dev/null", timeout=30)
    return res.stdout if res.returncode == 0 else ""


def dependents(record: ExperimentRecord, job_id: str) -> list[JobRecord]:
    """Every job that waits on ``job_id``, directly or through other jobs."""
    out: list[JobRecord] = []
    frontier = {job_id}
    while frontier:
        nxt = {j.job_id for j in record.jobs if set(j.depends_on) & frontier and j not in out}
        out += [j for j in record.jobs if j.job_id in nxt and j not in out]
        frontier = nxt
    return out


@dataclass
class Follower:
    """Incremental log reader + state tracker for one experiment."""

    record: ExperimentRecord
    shell: Shell
    write: Write = stdout_write
    secrets: list[str] = field(default_factory=list)
    prefix: bool | None = None
    announce: bool = True
    _offsets: dict[str, int] = field(default_factory=dict)
    _paths: dict[str, str] = field(default_factory=dict)  # the log file being followed, per job
    _partial: dict[str, str] = field(default_factory=dict)
    _last: dict[str, str] = field(default_factory=dict)
    _drained: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.prefix is None:
            self.prefix = len(self.record.jobs) > 1

    def _emit(self, job: JobRecord, text: str, final: bool = False) -> None:
        buf = self._partial.get(job.job_id, "") + text
        lines = buf.split("\n")
        self._partial[job.job_id] = "" if final else lines.pop()
        if final and lines and lines[-1] == "":
            lines.pop()
        if not lines:
            return
        tag = f"[{job.stage}] " if self.prefix else ""
        out = "".join(f"{tag}{line}\n" for line in lines)
        self.write(scrub_text(out, self.secrets))

    def pump(self, job: JobRecord, final: bool = False) -> None:
        """Print whatever the job's log gained since the last call."""
        path = log_path(self.record, job, self.shell)
        if not path:
            return
        if self._paths.setdefault(job.job_id, path) != path:  # requeued: the new attempt writes a new file
            self._paths[job.job_id] = path
            self._offsets[job.job_id] = 0
            self.note(f"{job.stage} was requeued; following its new log {path}")
        offset = self._offsets.get(job.job_id, 0)
        data = self.shell.read_from(path, offset)
        if data:
            self._offsets[job.job_id] = offset + len(data)
            self._emit(job, data.decode("utf-8", "replace"))
        if final and self._partial.get(job.job_id):
            self._emit(job, "", final=True)

    def note(self, text: str) -> None:
        if self.announce:
            self.write(f"nemotron: {text}\n")

    def transitions(self, statuses: dict[str, st.JobStatus]) -> None:
        for job in self.record.jobs:
            status = statuses.get(job.job_id)
            key = f"{status.state}:{status.reason}" if status is not None and status.state == st.PENDING else None
            key = key or (status.state if status is not None else None)
            if status is None or self._last.get(job.job_id) == key:
                continue
            self._last[job.job_id] = key
            where = f" on {status.nodes}" if status.nodes and status.state == st.RUNNING else ""
            native = f" (slurm job {job.native_id})" if self.record.is_slurm and job.native_id else ""
            why = f": {status.reason}" if status.reason and status.state in (st.PENDING, st.CANCELLED) else ""
            self.note(f"{job.stage}{native} {status.state}{where}{why}")
            if status.state == st.PENDING and status.reason.split(",")[0] in HOPELESS_REASONS:
                self.note(
                    f"{job.stage} cannot start as submitted ({status.reason}); fix the profile/config and "
                    f"cancel it: nemotron cancel {self.record.experiment_id}"
                )

    def poll(self) -> dict[str, st.JobStatus]:
        statuses = st.experiment_states(self.record, self.shell)
        # announce starts before the job's first log lines and ends after its last ones
        self.transitions({k: v for k, v in statuses.items() if not v.terminal})
        for job in self.record.jobs:
            if job.job_id in self._drained:
                continue
            status = statuses[job.job_id]
            if status.state != st.PENDING:
                # Slurm's log is complete once the job is terminal; a local log is complete only
                # when the runner stops (its tee thread copies it), so `drain()` finishes those.
                final = status.terminal and self.record.is_slurm
                self.pump(job, final=final)
                if final:
                    self._drained.add(job.job_id)
        self.transitions({k: v for k, v in statuses.items() if v.terminal})
        return statuses

    def drain(self) -> None:
        for job in self.record.jobs:
            if job.job_id not in self._drained:
                self.pump(job, final=True)
                self._drained.add(job.job_id)

    def follow(
        self,
        *,
        interval: float = 1.0,
        runner_alive: Callable[[], bool] | None = None,
        cancel_dependents: bool = True,
        timeout: float | None = None,
    ) -> dict[str, st.JobStatus]:
        """Poll until every job is terminal (Slurm) or the in-process runner has stopped (local).

        A local job without a final marker once its runner stopped never started: it counts as
        failed.
        """
        start = time.monotonic()
        while True:
            statuses = self.poll()
            if cancel_dependents:
                self._cancel_orphans(statuses)
            if runner_alive is None:
                if all(s.terminal for s in statuses.values()):
                    break
            elif not runner_alive():
                statuses = self.poll()
                for job in self.record.jobs:
                    status = statuses[job.job_id]
                    if not status.terminal:
                        status.state, status.reason = st.FAILED, status.reason or "never started"
                break
            if timeout is not None and time.monotonic() - start > timeout:
                break
            time.sleep(interval)
        self.drain()
        return statuses

    def _cancel_orphans(self, statuses: dict[str, st.JobStatus]) -> None:
        if not self.record.is_slurm:
            return
        doomed: list[JobRecord] = []
        for job in self.record.jobs:
            if statuses[job.job_id].state in st.BAD:
                doomed += [d for d in dependents(self.record, job.job_id) if not statuses[d.job_id].terminal]
        ids = sorted({d.native_id for d in doomed if d.native_id})
        if ids:
            self.shell.run(f"scancel {' '.join(ids)}")
            for d in doomed:
                statuses[d.job_id].state = st.CANCELLED
                statuses[d.job_id].reason = "dependency failed"


def last_error_line(shell: Shell, path: str | None) -> str:
    """The stage's own last ``error: ...`` line (every node script ends a user error with one)."""
    lines = [ln.strip() for ln in tail_text(shell, path, 200).splitlines()]
    errors = [ln for ln in lines if ln.startswith("error:") or "] error:" in ln]
    return errors[-1] if errors else ""


def _dependency_failed(record: ExperimentRecord, job: JobRecord, statuses: dict[str, st.JobStatus] | None) -> str:
    """The stage this job waited on that failed, if any ("" when it was cancelled for another reason)."""
    for dep in record.jobs:
        if dep.job_id in job.depends_on or dep.native_id in job.depends_on:
            status = (statuses or {}).get(dep.job_id)
            if status is None or status.state not in st.BAD:
                continue
            mine = (statuses or {}).get(job.job_id)
            # ended first (or, next to a cancelled dependency, in the same second as it, e.g. one
            # `nemotron cancel` of both): it was cancelled itself, not because of the dependency
            if (
                mine is not None
                and mine.ended
                and status.ended
                and (mine.ended < status.ended or (status.state == st.CANCELLED and mine.ended == status.ended))
            ):
                continue
            return dep.stage
    return ""


def failure_report(
    record: ExperimentRecord,
    job: JobRecord,
    status: st.JobStatus,
    shell: Shell,
    statuses: dict[str, st.JobStatus] | None = None,
) -> str:
    """Why a job did not succeed, in words: cancelled, out of time, the script's exit code and last
    ``error:`` line, or — for one that never started — the scheduler's reason and log tails."""
    if status.state not in st.BAD:
        return ""
    if status.script_started:
        log = log_path(record, job, shell)
        if status.state == st.TIMEOUT:
            head = f"{job.stage} ran out of time (Slurm TIMEOUT): raise resources.time (or --time)"
        elif status.state == st.CANCELLED:
            head = f"{job.stage} was cancelled while running ({status.reason or 'scancel / nemotron cancel'})"
        else:
            code = f"exit code {status.exit_code}" if status.exit_code is not None else status.native_state
            head = f"{job.stage} failed ({code})"
        error = last_error_line(shell, log) if status.state == st.FAILED else ""
        return f"{head}; log: {log}" + (f"\n  {error}" if error else "")
    if status.state == st.CANCELLED:
        failed_dep = _dependency_failed(record, job, statuses)
        if failed_dep or (statuses is None and status.reason in ("DependencyNeverSatisfied", "dependency failed")):
            return f"{job.stage} never ran: {failed_dep or 'a stage it depends on'} did not succeed"
        if status.reason in ("Dependency", "DependencyNeverSatisfied", "dependency failed", "") or (
            status.reason.startswith("never started")
        ):
            detail = "" if status.reason in ("", "Dependency") else f" ({status.reason})"
            return f"{job.stage} was cancelled before it started{detail}"
    if status.state == st.TIMEOUT:
        return f"{job.stage} ran out of time before its script started (Slurm TIMEOUT)"
    parts = [f"{job.stage} failed before its script started ({status.native_state or status.state})"]
    if status.reason:
        parts.append(f"  {'slurm reason' if record.is_slurm else 'reason'}: {status.reason}")
    if record.is_slurm:
        # NeMo-Run's batch script runs under `set -vx`: its log echoes every script line. What
        # explains a failure before the stage script are the scheduler's own messages.
        batch = [ln for ln in tail_text(shell, job.sbatch_log(), 400).splitlines() if _SCHEDULER_MSG.search(ln)]
        if batch:
            parts.append(f"  from the batch log {job.sbatch_log()}:")
            parts += [f"    {line}" for line in batch[-12:]]
        if any("container" in line for line in batch):
            parts.append('  hint: no pyxis on this cluster? set container_image = "" in the profile')
        task_log = slurm_log(shell, job)
        task = tail_text(shell, task_log)
        if task.strip():
            parts.append(f"  last lines of the task log {task_log}:")
            parts += [f"    {line}" for line in task.rstrip("\n").split("\n")]
        if not batch and not task.strip():
            parts.append(f"  no log yet; see {job.task_dir}")
    else:
        text = tail_text(shell, log_path(record, job, shell))
        if text.strip():
            parts += [f"    {line}" for line in text.rstrip("\n").split("\n")]
    return "\n".join(parts)
