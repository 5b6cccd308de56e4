"""Real sbatch through NeMo-Run on the local cluster: attached, detached, chains, failures, cancel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _jobkit import Captured, files_containing, make_job, new_id, sacct

from nemotron.env.profiles import Profile
from nemotron.errors import UserError
from nemotron.execution import control
from nemotron.execution import states as st
from nemotron.execution.records import experiment_dir, find
from nemotron.execution.shell import LocalShell
from nemotron.execution.submit import submit
from nemotron.paths import nemotron_home

pytestmark = pytest.mark.slurm
NEMOTRON = str(Path(sys.executable).parent / "nemotron")


def test_attached_success_streams_logs(slurm_profile: Profile) -> None:
    exp = new_id("sl-ok")
    body = "import os, sys\nprint('on', os.environ['SLURM_JOB_ID'], sys.executable)\nprint('second line')\n"
    job = make_job(exp, "hello", body)
    out = Captured()
    result = submit([job], slurm_profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 0, out.text
    (outcome,) = result.jobs
    assert outcome.state == st.SUCCEEDED and outcome.exit_code == 0 and outcome.native_id
    assert f"on {outcome.native_id} {sys.executable}" in out.text  # the venv's python, no container
    assert "second line" in out.text
    assert f"logs in {experiment_dir(exp)}" in out.text
    assert sacct(outcome.native_id) == ["COMPLETED", "0:0"]


def test_attached_failure_reports_the_exit_code(slurm_profile: Profile) -> None:
    exp = new_id("sl-fail")
    job = make_job(exp, "broken", "import sys\nprint('about to fail')\nsys.exit(5)\n")
    out = Captured()
    result = submit([job], slurm_profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 1
    assert (result.jobs[0].state, result.jobs[0].exit_code) == (st.FAILED, 5)
    assert "about to fail" in out.text and "broken failed (exit code 5)" in out.text
    assert sacct(result.jobs[0].native_id) == ["FAILED", "5:0"]


def test_detached_then_status_and_logs(slurm_profile: Profile) -> None:
    exp = new_id("sl-batch")
    job = make_job(
        exp, "later", "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(1)\n"
    )
    out = Captured()
    t0 = time.monotonic()
    result = submit([job], slurm_profile, detach=True, write=out)
    assert time.monotonic() - t0 < 30 and result.exit_code == 0
    assert result.jobs[0].state == "SUBMITTED" and result.jobs[0].native_id
    assert f"nemotron logs {exp} --follow" in out.text and f"nemotron status {exp}" in out.text
    follow = Captured()
    assert control.print_logs(exp, follow=True, write=follow, interval=0.5) == 0
    assert all(f"tick {i}" in follow.text for i in range(3))
    # a fresh process (the CLI), as a user would check later
    env = dict(os.environ)
    status = subprocess.run([NEMOTRON, "status", exp], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "SUCCEEDED" in status.stdout and result.jobs[0].native_id in status.stdout
    logs = subprocess.run([NEMOTRON, "logs", exp], capture_output=True, text=True, env=env, timeout=60)
    assert logs.returncode == 0 and "tick 2" in logs.stdout
    listing = subprocess.run([NEMOTRON, "status"], capture_output=True, text=True, env=env, timeout=60)
    assert exp in listing.stdout


def test_chain_stage_two_fails_stage_three_never_runs(slurm_profile: Profile) -> None:
    exp = new_id("sl-chain")
    ran = nemotron_home() / f"{exp}-third-ran"
    a = make_job(exp, "one", "import time\nprint('one ok')\ntime.sleep(1)\n")
    b = make_job(exp, "two", "import sys\nprint('two fails')\nsys.exit(3)\n", depends_on=(a.job_id,))
    c = make_job(exp, "three", f"open({str(ran)!r}, 'w').write('x')\n", depends_on=(b.job_id,))
    out = Captured()
    result = submit([a, b, c], slurm_profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 1
    by_stage = {j.stage: j for j in result.jobs}
    assert by_stage["one"].state == st.SUCCEEDED
    assert (by_stage["two"].state, by_stage["two"].exit_code) == (st.FAILED, 3)
    assert by_stage["three"].state == st.CANCELLED
    assert not ran.exists()
    # afterok: two started only after one had finished
    end_one = sacct(by_stage["one"].native_id, "End")[0]
    start_two = sacct(by_stage["two"].native_id, "Start")[0]
    assert start_two >= end_one
    assert sacct(by_stage["three"].native_id, "State")[0].startswith("CANCELLED")
    assert "three never ran" in out.text


def test_failure_before_the_script_shows_reason_and_log(slurm_profile: Profile) -> None:
    """A container image on a cluster without pyxis: srun refuses before the stage script runs."""
    exp = new_id("sl-prestart")
    resources = {"nodes": 1, "gpus_per_node": 0, "time": "00:05:00", "container": "nvcr.io/nvidia/nemo:26.02"}
    job = make_job(exp, "boxed", "print('never printed')\n", resources=resources)
    out = Captured()
    result = submit([job], slurm_profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 1 and result.jobs[0].state == st.FAILED
    assert "boxed failed before its script started" in out.text
    assert "srun: unrecognized option '--container-image" in out.text
    assert "never printed" not in out.text
    assert "failed before its script started" in control.status_text(exp)


def test_cancel_a_running_experiment(slurm_profile: Profile) -> None:
    exp = new_id("sl-cancel")
    a = make_job(exp, "sleeper", "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n")
    b = make_job(exp, "after", "print('must not run')\n", depends_on=(a.job_id,))
    submit([a, b], slurm_profile, detach=True, write=Captured())
    record, _ = find(exp)
    deadline = time.monotonic() + 60
    while sacct(record.jobs[0].native_id, "State")[:1] != ["RUNNING"] and time.monotonic() < deadline:
        time.sleep(0.5)
    out = Captured()
    assert control.cancel(exp, write=out) == 0
    states = st.experiment_states(record, LocalShell())
    assert {s.state for s in states.values()} == {st.CANCELLED}
    assert "cancelled sleeper, after" in out.text


def test_resources_env_and_secrets_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    exp = new_id("sl-res")
    secret = "hf_" + "7c1d" * 6
    monkeypatch.setenv("HF_TOKEN", secret)
    body = (
        "import hashlib, os\n"
        "e = os.environ\n"
        "line = ' '.join(map(str, ['rank', e['SLURM_PROCID'], 'of', e['SLURM_NTASKS'], 'gpus',"
        " e.get('CUDA_VISIBLE_DEVICES'), 'plain', e.get('PLAIN'), 'hf',"
        " hashlib.sha256(e.get('HF_TOKEN', '').encode()).hexdigest()[:16], 'wandb', e.get('WANDB_API_KEY') is not None]))\n"
        "os.write(1, (line + '\\n').encode())  # one write: both tasks share the output file\n"
    )
    job = make_job(
        exp,
        "shaped",
        body,
        resources={"nodes": 1, "ntasks_per_node": 2, "gpus_per_node": 2, "time": "00:03:00", "container": None},
        secret_env_names=("HF_TOKEN",),
    )
    profile = Profile(
        name="res",
        executor="slurm",
        partition="batch",
        env_vars={"PLAIN": "two words", "WANDB_API_KEY": "wk-" + "5e6f" * 6},
    )
    out = Captured()
    result = submit([job], profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 0, out.text
    import hashlib

    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    for rank in (0, 1):
        assert f"rank {rank} of 2 gpus 0,1 plain two words hf {digest} wandb True" in out.text, out.text
    native = result.jobs[0].native_id
    deadline = time.monotonic() + 20
    timelimit, tres = sacct(native, "Timelimit,AllocTRES")
    while not (timelimit and tres) and time.monotonic() < deadline:  # slurmdbd catches up
        time.sleep(1)
        timelimit, tres = sacct(native, "Timelimit,AllocTRES")
    assert timelimit == "00:03:00" and "gres/gpu=2" in tres
    for value in (secret, "wk-" + "5e6f" * 6):
        assert value not in out.text
        assert files_containing(nemotron_home(), value) == []


def test_sbatch_refusal_is_a_one_line_user_error() -> None:
    exp = new_id("sl-badpart")
    a = make_job(exp, "a", "print(1)\n")
    b = make_job(exp, "b", "print(2)\n", depends_on=(a.job_id,))
    with pytest.raises(UserError) as err:
        submit([a, b], Profile(name="wrong", executor="slurm", partition="no-such-partition"), detach=True)
    assert "sbatch: error: invalid partition specified: no-such-partition" in err.value.one_line()
    assert "\n" not in err.value.one_line()
