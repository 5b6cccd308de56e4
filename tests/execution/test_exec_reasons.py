"""failure_report's words for states the local cluster cannot produce quickly (a real TIMEOUT takes minutes)."""

from __future__ import annotations

from nemotron.execution import states as st
from nemotron.execution.monitor import failure_report
from nemotron.execution.records import ExperimentRecord, JobRecord
from nemotron.execution.shell import LocalShell


def _record(tmp_path) -> ExperimentRecord:
    job = JobRecord("pretrain", "E--pretrain", "pretrain", str(tmp_path), str(tmp_path), str(tmp_path),
                    native_id="42", job_name="pretrain.nemotron")  # fmt: skip
    (tmp_path / "log-pretrain.nemotron_42_0.out").write_text("step 1\nerror: first\nstep 2\nerror: the last one\n")
    return ExperimentRecord("E", "nemotron_E", 0.0, "slurm", {}, jobs=[job])


def test_timeout_and_cancel_are_not_failed_exit_code_0(tmp_path) -> None:
    record = _record(tmp_path)
    job = record.jobs[0]
    timeout = st.JobStatus(state=st.TIMEOUT, exit_code=0, native_state="TIMEOUT", script_started=True)
    text = failure_report(record, job, timeout, LocalShell())
    assert text.startswith("pretrain ran out of time (Slurm TIMEOUT)") and "exit code 0" not in text
    cancelled = st.JobStatus(state=st.CANCELLED, exit_code=0, native_state="CANCELLED", script_started=True)
    assert failure_report(record, job, cancelled, LocalShell()).startswith("pretrain was cancelled while running")


def test_a_failed_stage_shows_its_last_error_line(tmp_path) -> None:
    record = _record(tmp_path)
    failed = st.JobStatus(state=st.FAILED, exit_code=2, native_state="FAILED", script_started=True)
    text = failure_report(record, record.jobs[0], failed, LocalShell())
    assert text.splitlines()[-1] == "  error: the last one"
