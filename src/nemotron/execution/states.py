"""The state of each job of an experiment, from the scheduler and from the node's own marker.

Slurm answers through ``sacct`` (needs accounting) with ``squeue`` as the fallback for jobs that
accounting has not recorded yet. The node wrapper writes ``nemotron-state.json`` into the task
directory when the stage script starts and when it ends: for local runs that is the only source,
for Slurm it tells "failed before the script started" apart from "the script failed".
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass

from nemotron.execution.records import ExperimentRecord, JobRecord
from nemotron.execution.shell import Shell

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMEOUT, UNKNOWN = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "UNKNOWN",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMEOUT})
BAD = frozenset({FAILED, CANCELLED, TIMEOUT})

_SLURM_TO_STATE = {
    "PENDING": PENDING,
    "REQUEUED": PENDING,
    "REQUEUE_HOLD": PENDING,
    "REQUEUE_FED": PENDING,
    "CONFIGURING": PENDING,
    "RESV_DEL_HOLD": PENDING,
    "SUSPENDED": PENDING,
    "RUNNING": RUNNING,
    "COMPLETING": RUNNING,
    "STAGE_OUT": RUNNING,
    "RESIZING": RUNNING,
    "SIGNALING": RUNNING,
    "COMPLETED": SUCCEEDED,
    "FAILED": FAILED,
    "NODE_FAIL": FAILED,
    "BOOT_FAIL": FAILED,
    "OUT_OF_MEMORY": FAILED,
    "DEADLINE": FAILED,
    "PREEMPTED": FAILED,
    "SPECIAL_EXIT": FAILED,
    "CANCELLED": CANCELLED,
    "REVOKED": CANCELLED,
    "TIMEOUT": TIMEOUT,
}


@dataclass
class JobStatus:
    state: str = UNKNOWN
    exit_code: int | None = None
    reason: str = ""  # scheduler reason (Dependency, Resources, DependencyNeverSatisfied, ...)
    elapsed: str = ""
    nodes: str = ""
    native_state: str = ""  # the scheduler's own word (COMPLETED, OUT_OF_MEMORY, ...)
    script_started: bool = False  # the node wrapper ran (marker file exists)
    ended: str = ""  # Slurm's End time (ISO, sortable as text) once the job ended

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def slurm_state(native: str) -> str:
    word = native.split()[0].rstrip("+") if native else ""
    return _SLURM_TO_STATE.get(word, UNKNOWN)


def _exit_code(text: str) -> int | None:
    """sacct's ``3:0`` (exit code 3) or ``0:15`` (killed by signal 15 -> 128+15, like a shell)."""
    code, _, signal = text.partition(":")
    try:
        code_i, sig_i = int(code), int(signal or 0)
    except ValueError:
        return None
    return code_i if code_i or not sig_i else 128 + sig_i


def query_slurm(shell: Shell, ids: list[str]) -> dict[str, JobStatus]:
    """State of Slurm jobs ``ids`` (one sacct call, one squeue call for what sacct lacks)."""
    ids = [i for i in ids if i]
    out: dict[str, JobStatus] = {}
    if not ids:
        return out
    joined = ",".join(ids)
    res = shell.run(
        f"sacct -X -n -P -j {shlex.quote(joined)} -o JobIDRaw,State,ExitCode,Reason,Elapsed,NodeList,End", timeout=60
    )
    if res.returncode == 0:
        for line in res.stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 6 or parts[0] not in ids:
                continue
            jid, native, code, reason, elapsed, nodes = parts[:6]
            ended = parts[6] if len(parts) > 6 and parts[6][:1].isdigit() else ""
            out[jid] = JobStatus(
                state=slurm_state(native),
                exit_code=_exit_code(code),
                reason="" if reason in ("None", "") else reason,
                elapsed=elapsed,
                nodes="" if nodes.startswith("None") else nodes,
                native_state=native.split()[0] if native else "",
                ended=ended,
            )
    missing = [i for i in ids if i not in out or out[i].state in (PENDING, UNKNOWN)]
    if missing:
        res = shell.run(f"squeue -h -j {shlex.quote(','.join(missing))} -o '%i|%T|%r|%M|%N'", timeout=60)
        for line in res.stdout.splitlines() if res.returncode == 0 else []:
            parts = line.split("|")
            if len(parts) < 5 or parts[0] not in missing:
                continue
            jid, native, reason, elapsed, nodes = parts[:5]
            out[jid] = JobStatus(
                state=slurm_state(native),
                reason="" if reason in ("None", "") else reason,
                elapsed=elapsed,
                nodes=nodes,
                native_state=native,
            )
    return out


def read_marker(shell: Shell, job: JobRecord) -> dict | None:
    """The node wrapper's state marker, or None when the stage script never started."""
    raw = shell.read_from(job.state_file, 0)
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return None


def _fmt_elapsed(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def status_from_marker(marker: dict | None) -> JobStatus:
    """A local job's status from its marker alone (local runs have no scheduler to ask later)."""
    if not marker:
        return JobStatus(state=PENDING)
    state = marker.get("state", UNKNOWN)
    started = float(marker.get("started") or 0)
    if state == RUNNING and not _alive_here(marker):
        state = FAILED  # the process is gone without writing its end marker (killed, machine reboot)
    ended = float(marker.get("ended") or 0) or time.time()
    return JobStatus(
        state=state,
        exit_code=marker.get("exit_code"),
        reason=marker.get("reason", ""),
        elapsed=_fmt_elapsed(ended - started) if started else "",
        nodes=marker.get("host", ""),
        native_state=state,
        script_started=bool(started),
    )


def _alive_here(marker: dict) -> bool:
    """False only when we can tell: the marker's host is this machine and its pid is gone."""
    import os
    import socket

    pid = marker.get("pid")
    if not pid or marker.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def experiment_states(record: ExperimentRecord, shell: Shell) -> dict[str, JobStatus]:
    """``job_id -> JobStatus`` for every job of ``record``."""
    out: dict[str, JobStatus] = {}
    if record.is_slurm:
        by_native = query_slurm(shell, [j.native_id for j in record.jobs])
        for job in record.jobs:
            status = by_native.get(job.native_id) or JobStatus(state=PENDING if job.native_id else UNKNOWN)
            if status.state in BAD:  # only then does it matter whether the script ever started
                marker = read_marker(shell, job)
                status.script_started = bool(marker and marker.get("started"))
            else:
                status.script_started = status.state in (RUNNING, SUCCEEDED)
            out[job.job_id] = status
        return out
    runner_gone: bool | None = None
    for job in record.jobs:
        status = status_from_marker(read_marker(shell, job))
        if status.state == PENDING:
            runner_gone = (not runner_alive(record)) if runner_gone is None else runner_gone
            if runner_gone:  # nobody is left to start it
                status.state, status.reason = CANCELLED, "never started (the submitting process ended)"
        out[job.job_id] = status
    return out


def runner_alive(record: ExperimentRecord) -> bool:
    """Whether the process running a local experiment still exists (only knowable on its host)."""
    import os
    import socket

    pid, host = record.runner.get("pid"), record.runner.get("host")
    if not pid:
        return False
    if host != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
