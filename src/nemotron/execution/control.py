"""status / logs / cancel for recorded experiments, on Slurm (local or SSH tunnel) and local runs.

Everything starts from the record ``submit`` wrote (``records``); Slurm is asked through the
same shell the experiment was submitted through. NeMo-Run is imported only for SSH connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import time
from dataclasses import replace

from nemotron.execution import states as st
from nemotron.execution.monitor import Follower, Write, failure_report, stdout_write
from nemotron.execution.records import ExperimentRecord, JobRecord, all_records, find
from nemotron.execution.report import status_table
from nemotron.execution.shell import Shell, shell_for

RECENT = 10


def _subset(record: ExperimentRecord, job: JobRecord | None) -> ExperimentRecord:
    return record if job is None else replace(record, jobs=[job])


def status_text(key: str | None = None, *, recent: int = RECENT) -> str:
    """The status table of one experiment/job, or of the ``recent`` latest experiments."""
    if key:
        record, job = find(key)
        records = [_subset(record, job)]
    else:
        records = all_records()[-recent:]
        if not records:
            return "No experiments yet. Submit one with: nemotron super3 <stage> --run PROFILE\n"
    rows = []
    shells: dict[str, Shell] = {}
    try:
        for record in records:
            shell = _shell(record, shells)
            rows.append((record, st.experiment_states(record, shell)))
    finally:
        for shell in shells.values():
            shell.close()
    text = status_table(rows)
    if key:
        record, statuses = rows[0]
        shell = _shell(record, shells)
        notes = [failure_report(record, j, statuses[j.job_id], shell, statuses) for j in record.jobs]
        text += "".join(f"{n}\n" for n in notes if n)
    return text


def _shell(record: ExperimentRecord, cache: dict[str, Shell]) -> Shell:
    key = json.dumps(record.profile, sort_keys=True) if record.is_slurm else "local"
    if key not in cache:
        cache[key] = shell_for(record.profile)
    return cache[key]


def print_logs(key: str, *, follow: bool = False, write: Write = stdout_write, interval: float = 1.0) -> int:
    """Print the log(s) of an experiment or one job; ``follow`` tails until they end.

    Returns 1 when a followed job ended failed/cancelled, else 0.
    """
    record, job = find(key)
    sub = _subset(record, job)
    shell = shell_for(record.profile)
    try:
        if not follow:
            statuses = st.experiment_states(sub, shell)
            follower = Follower(sub, shell, write=write, announce=False)
            for item in sub.jobs:
                if statuses[item.job_id].state == st.PENDING:
                    write(f"nemotron: {item.stage} has not started yet ({_pending_why(statuses[item.job_id])})\n")
                    continue
                follower.pump(item, final=True)
                report = failure_report(sub, item, statuses[item.job_id], shell, statuses)
                if report and not statuses[item.job_id].script_started:
                    write(report + "\n")
            return 0
        follower = Follower(sub, shell, write=write)
        runner_alive = None if record.is_slurm else (lambda: st.runner_alive(record))
        statuses = follower.follow(interval=interval, runner_alive=runner_alive, cancel_dependents=False)
        for item in sub.jobs:
            report = failure_report(sub, item, statuses[item.job_id], shell, statuses)
            if report:
                write(report + "\n")
        return 1 if any(s.state in st.BAD for s in statuses.values()) else 0
    finally:
        shell.close()


def _pending_why(status: st.JobStatus) -> str:
    """Slurm's pending reason in words a user can act on."""
    words = {
        "Dependency": "waiting for the stages it depends on",
        "Resources": "waiting for free nodes",
        "Priority": "other jobs are ahead of it",
        "BeginTime": "requeued; waiting for its begin time",
        "DependencyNeverSatisfied": "a stage it depends on failed; it will never start",
    }
    reason = status.reason or "pending"
    return f"{reason}: {words[reason]}" if reason in words else reason


def cancel(key: str, *, write: Write = stdout_write) -> int:
    """Cancel the unfinished jobs of an experiment (or the one job named). Returns an exit code."""
    record, job = find(key)
    sub = _subset(record, job)
    shell = shell_for(record.profile)
    try:
        statuses = st.experiment_states(sub, shell)
        live = [j for j in sub.jobs if not statuses[j.job_id].terminal]
        if not live:
            write(f"nemotron: nothing to cancel in {record.experiment_id}: every job has finished\n")
            return 0
        if record.is_slurm:
            ids = [j.native_id for j in live if j.native_id]
            res = shell.run(f"scancel {' '.join(shlex.quote(i) for i in ids)}")
            if res.returncode != 0:
                write(f"nemotron: scancel failed: {res.stderr.strip()}\n")
                return 1
            # dependents of a cancelled job can never run: Slurm drops them (--kill-on-invalid-dep)
        else:
            _cancel_local(sub, live, shell)
        write(f"nemotron: cancelled {', '.join(j.stage for j in live)} of {record.experiment_id}\n")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            statuses = st.experiment_states(sub, shell)
            if all(statuses[j.job_id].terminal for j in live):
                break
            time.sleep(0.5)
        write(status_table(sub, statuses))
        return 0
    finally:
        shell.close()


def _cancel_local(record: ExperimentRecord, live: list[JobRecord], shell: Shell) -> None:
    """Local jobs: SIGTERM the running wrapper's process group, then mark every target CANCELLED.

    The marker makes the runner's next stages refuse to start (their dependency did not succeed).
    """
    for job in live:
        marker = st.read_marker(shell, job) or {}
        pid = marker.get("pid")
        if marker.get("state") == st.RUNNING and pid and marker.get("host") == socket.gethostname():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGTERM)
        data = {"state": st.CANCELLED, "reason": "cancelled by user", "ended": time.time()}
        if marker.get("started"):
            data["started"] = marker["started"]
        path = job.state_file
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.cancel.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
