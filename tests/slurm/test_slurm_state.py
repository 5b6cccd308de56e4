"""On the real local cluster: logs follow a requeue (SLURM_RESTART_COUNT), and failure reasons say
what happened (cancelled while running, cancelled before starting, not started yet, the last error line)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from _jobkit import Captured, make_job, new_id, sacct

from nemotron.env.profiles import Profile
from nemotron.execution import control
from nemotron.execution.monitor import log_path
from nemotron.execution.records import find
from nemotron.execution.submit import submit

pytestmark = pytest.mark.slurm


def wait_for(check, timeout: float = 90, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_logs_follow_a_requeued_job_to_its_new_attempt(slurm_profile: Profile) -> None:
    exp = new_id("sl-requeue")
    body = (
        "import os, time\n"
        "n = os.environ.get('SLURM_RESTART_COUNT', '0')\n"
        "print('attempt', n, flush=True)\n"
        "if n == '0':\n    time.sleep(120)\n"
        "print('finished attempt', n, flush=True)\n"
    )
    submit([make_job(exp, "requeued", body)], slurm_profile, detach=True, write=Captured())
    record, _ = find(exp)
    job = record.jobs[0]
    first = Path(job.slurm_log(0))
    wait_for(lambda: first.exists() and "attempt 0" in first.read_text(), what="the first attempt's log")
    subprocess.run(["scontrol", "requeue", job.native_id], check=True)
    # a requeued batch job waits ~2 minutes (BeginTime); let it start now

    def started_again() -> bool:
        subprocess.run(["scontrol", "update", f"jobid={job.native_id}", "StartTime=now"], capture_output=True)
        return Path(job.slurm_log(1)).exists()

    wait_for(started_again, what="the requeued job to start again")
    wait_for(lambda: sacct(job.native_id, "State")[:1] == ["COMPLETED"], what="the second attempt to finish")
    assert log_path(record, job).endswith(f"_{job.native_id}_1.out")
    logs = Captured()
    assert control.print_logs(exp, write=logs) == 0
    assert "attempt 1" in logs.text and "finished attempt 1" in logs.text
    assert "attempt 0" not in logs.text  # the old attempt's file is not what `logs` shows


def test_failure_reasons_say_what_happened(slurm_profile: Profile) -> None:
    exp = new_id("sl-reasons")
    a = make_job(exp, "sleeper", "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n")
    b = make_job(exp, "waiter", "print('must not run')\n", depends_on=(a.job_id,))
    c = make_job(
        exp,
        "broken",
        "import sys\nprint('working')\nprint('error: data.inputs[0]: no rows — fix the input', file=sys.stderr)\n"
        "sys.exit(2)\n",
    )
    submit([a, b, c], slurm_profile, detach=True, write=Captured())
    record, _ = find(exp)
    ids = {j.stage: j.native_id for j in record.jobs}
    wait_for(lambda: sacct(ids["sleeper"], "State")[:1] == ["RUNNING"], what="sleeper to run")
    wait_for(lambda: sacct(ids["broken"], "State")[:1] == ["FAILED"], what="broken to fail")

    pending = Captured()
    control.print_logs(f"{exp}:waiter", write=pending)
    assert "waiter has not started yet (Dependency: waiting for the stages it depends on)" in pending.text

    assert control.cancel(f"{exp}:waiter", write=Captured()) == 0  # cancelled directly, not by a failure
    assert control.cancel(f"{exp}:sleeper", write=Captured()) == 0
    text = control.status_text(exp)
    assert "waiter was cancelled before it started" in text
    assert "did not succeed" not in text and "depends on failed" not in text
    assert "sleeper was cancelled while running" in text
    assert "failed (exit code 0)" not in text
    assert "broken failed (exit code 2)" in text
    assert "error: data.inputs[0]: no rows — fix the input" in text


def test_cluster_flags_sbatch_flags_and_job_names_reach_slurm(slurm_profile: Profile) -> None:
    """--time/--qos over the profile, [profile.sbatch] extra flags, the stage first in the job name, and
    --batch printing where the log will be."""
    from dataclasses import replace

    exp = new_id("sl-flags")
    profile = replace(slurm_profile, sbatch={"mem": "200M", "exclusive": True}).with_cluster_flags(
        {"time": "00:03:00", "qos": "normal", "partition": "batch"}
    )
    job = make_job(exp, "pretrain", "print('flags ok', flush=True)\n", resources={
        "nodes": 1, "gpus_per_node": 0, "time": profile.time, "container": None})  # fmt: skip
    out = Captured()
    submit([job], profile, detach=True, write=out)
    record, _ = find(exp)
    native = record.jobs[0].native_id
    shown = subprocess.run(["scontrol", "show", "job", native], capture_output=True, text=True).stdout
    assert "TimeLimit=00:03:00" in shown and "QOS=normal" in shown
    assert "MinMemoryNode=200M" in shown and "OverSubscribe=NO" in shown  # --mem, --exclusive
    assert "JobName=pretrain.nemotron" in shown  # the stage first: default squeue shows 8 characters
    squeue = subprocess.run(["squeue", "-h", "-j", native], capture_output=True, text=True).stdout
    assert not squeue or " pretrain " in squeue
    assert f"log: {record.jobs[0].slurm_log(0)}" in out.text
    log = Path(record.jobs[0].slurm_log(0))
    wait_for(lambda: log.exists() and "flags ok" in log.read_text(), what="the job's output")


def test_an_identical_running_pipe_is_detected(slurm_profile: Profile) -> None:
    """The same stages/configs/inputs on the same profile while the first still runs: refused with the
    experiment to follow; once it ended, submitting again is fine."""
    from nemotron.errors import UserError
    from nemotron.execution.duplicates import refuse_if_running, running_duplicate

    body = "import time\nprint('busy', flush=True)\ntime.sleep(300)\n"
    first_id, second_id = new_id("sl-dup"), new_id("sl-dup")
    first = [make_job(first_id, "pretrain", body, job_extra={"publish_alias": f"exp-{first_id}"})]
    second = [make_job(second_id, "pretrain", body, job_extra={"publish_alias": f"exp-{second_id}"})]
    other = [make_job(new_id("sl-dup"), "pretrain", body, job_extra={"config_hash": "1" * 64})]
    submit(first, slurm_profile, detach=True, write=Captured())
    with pytest.raises(UserError) as err:
        refuse_if_running(second, slurm_profile.name)
    assert f"already running: experiment {first_id}" in err.value.message
    assert f"nemotron logs {first_id} --follow" in err.value.hint and "--force" in err.value.hint
    assert running_duplicate(other, slurm_profile.name) is None  # another config is another plan
    assert control.cancel(first_id, write=Captured()) == 0
    assert running_duplicate(second, slurm_profile.name) is None
