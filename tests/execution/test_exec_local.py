"""Real NeMo-Run local executor: attached runs, a failing chain, secrets, status/logs/cancel, preview."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest
from _jobkit import Captured, files_containing, make_job, new_id

from nemotron.env.profiles import Profile
from nemotron.errors import UserError
from nemotron.execution import control
from nemotron.execution import states as st
from nemotron.execution.node import NodeLayout, wrapper_script
from nemotron.execution.preview import sbatch_preview
from nemotron.execution.records import STATE_FILE, experiment_dir, find
from nemotron.execution.submit import submit
from nemotron.paths import nemotron_home

SECRET = "wk-" + "9f3a" * 6  # built at run time so the value is not a literal in this file
LOCAL = Profile(name="local", executor="local")


def test_attached_success_streams_the_log_and_records_the_run() -> None:
    exp = new_id("loc-ok")
    job = make_job(exp, "hello", "import os, sys\nprint('hello from', os.environ['NEMOTRON_STAGE'], sys.executable)\n")
    out = Captured()
    result = submit([job], LOCAL, detach=False, write=out)
    assert result.exit_code == 0, out.text
    assert [j.state for j in result.jobs] == [st.SUCCEEDED]
    assert result.jobs[0].native_id.startswith("hello-")  # the local scheduler's app id
    import sys

    assert f"hello from hello {sys.executable}" in out.text  # the venv's python ran it
    assert "SUCCEEDED" in out.text
    record, _ = find(exp)
    assert record.jobs[0].stage == "hello" and not record.is_slurm
    assert "SUCCEEDED" in control.status_text(exp)
    logs = Captured()
    assert control.print_logs(exp, write=logs) == 0
    assert "hello from hello" in logs.text


def test_failed_stage_stops_the_chain_with_exit_code_1() -> None:
    exp = new_id("loc-chain")
    marker = nemotron_home() / f"{exp}-third-ran"
    a = make_job(exp, "first", "print('first ok')\n")
    b = make_job(exp, "second", "import sys\nprint('second fails')\nsys.exit(7)\n", depends_on=(a.job_id,))
    c = make_job(exp, "third", f"open({str(marker)!r}, 'w').write('ran')\n", depends_on=(b.job_id,))
    out = Captured()
    result = submit([a, b, c], LOCAL, detach=False, write=out)
    assert result.exit_code == 1
    states = {j.stage: (j.state, j.exit_code) for j in result.jobs}
    assert states["first"] == (st.SUCCEEDED, 0)
    assert states["second"] == (st.FAILED, 7)
    assert states["third"][0] == st.CANCELLED
    assert not marker.exists(), "a stage after a failed one must not run"
    assert "[second] second fails" in out.text
    assert "third never ran" in out.text


def test_secrets_reach_the_job_but_no_file_or_output() -> None:
    exp = new_id("loc-secret")
    body = (
        "import hashlib, os\n"
        "v = os.environ.get('WANDB_API_KEY', '')\n"
        "print('secret sha', hashlib.sha256(v.encode()).hexdigest())\n"
        "print('leak attempt:', v)\n"
    )
    job = make_job(exp, "secretive", body)
    profile = Profile(name="local", executor="local", env_vars={"WANDB_API_KEY": SECRET, "PLAIN": "x y"})
    out = Captured()
    result = submit([job], profile, detach=False, write=out)
    assert result.exit_code == 0, out.text
    import hashlib

    assert hashlib.sha256(SECRET.encode()).hexdigest() in out.text
    assert SECRET not in out.text and "leak attempt: ***redacted***" in out.text
    # only the job's own log (it printed the value on purpose) may hold it; nothing we wrote does
    leaks = [p for p in files_containing(nemotron_home(), SECRET) if not p.name.endswith(".log")]
    assert leaks == []


def test_local_profiles_cannot_detach() -> None:
    job = make_job(new_id("loc-batch"), "x", "print(1)\n")
    with pytest.raises(UserError, match="cannot be detached"):
        submit([job], LOCAL, detach=True)


def test_cancel_stops_a_running_local_job() -> None:
    exp = new_id("loc-cancel")
    job = make_job(exp, "sleepy", "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n")
    results = []
    thread = threading.Thread(target=lambda: results.append(submit([job], LOCAL, detach=False, write=Captured())))
    thread.start()
    deadline = time.monotonic() + 60
    state_file = None
    while time.monotonic() < deadline:
        try:
            record, _ = find(exp)
            state_file = Path(record.jobs[0].state_file)
            if state_file.exists() and json.loads(state_file.read_text())["state"] == st.RUNNING:
                break
        except (UserError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    assert state_file is not None and state_file.exists(), "the job never started"
    out = Captured()
    assert control.cancel(exp, write=out) == 0
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert results[0].exit_code == 1
    assert results[0].jobs[0].state in (st.CANCELLED, st.FAILED)
    assert "cancelled sleepy" in out.text
    assert json.loads(state_file.read_text())["state"] in (st.CANCELLED, st.FAILED)


def test_wrapper_records_state_and_guards_dependencies(tmp_path: Path) -> None:
    import subprocess

    job = make_job(new_id("wrap"), "w", "import sys\nsys.exit(int(sys.argv[-1] == 'never'))\n")
    dep_dir, task_dir = tmp_path / "dep", tmp_path / "task"
    dep_dir.mkdir()
    task_dir.mkdir()
    layout = NodeLayout(
        python="python3", code_dir=str(tmp_path), train_yaml=str(job.train_yaml), task_dir=str(task_dir)
    )
    script = tmp_path / "w.sh"
    script.write_text(wrapper_script(job, layout, local=True, dependency_task_dirs=[str(dep_dir)]))
    # dependency without a SUCCEEDED marker: refuse to start
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 3 and "did not succeed" in proc.stderr
    assert json.loads((task_dir / STATE_FILE).read_text())["state"] == st.CANCELLED
    (dep_dir / STATE_FILE).write_text('{"state": "SUCCEEDED", "exit_code": 0}\n')
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    state = json.loads((task_dir / STATE_FILE).read_text())
    assert state["state"] == st.SUCCEEDED and state["exit_code"] == 0 and state["ended"] >= state["started"]


def test_preview_is_nemo_runs_sbatch_script_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemotron.pipeline.stages import BY_NAME

    monkeypatch.setenv("HF_TOKEN", "hf_" + "x1y2" * 6)
    exp = new_id("preview")
    job = make_job(
        exp,
        "pretrain",
        "",
        stage=BY_NAME["pretrain"],
        resources={"nodes": 2, "gpus_per_node": 8, "time": "02:00:00", "container": "nvcr.io/nvidia/nemo:26.02"},
        extra_cfg={"backend": "megatron"},
        depends_on=(f"{exp}--data",),
        secret_env_names=("HF_TOKEN",),
        env={"WANDB_PROJECT": "p"},
    )
    job = dataclasses.replace(job, stage=BY_NAME["pretrain"])  # the real entry: node_command, not a payload
    profile = Profile(
        name="c",
        executor="slurm",
        account="acct",
        partition="batch",
        qos="high",
        container_mounts=("/lustre:/lustre",),
        env_vars={"WANDB_API_KEY": SECRET, "NCCL_DEBUG": "WARN"},
    )
    script = sbatch_preview(job, profile)
    for flag in (
        "#SBATCH --account=acct",
        "#SBATCH --partition=batch",
        "#SBATCH --qos=high",
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --time=02:00:00",
        "#SBATCH --job-name=pretrain.nemotron",  # the stage first: default squeue shows 8 characters
        "#SBATCH --kill-on-invalid-dep=yes",
        "afterok:<",
        "--container-image nvcr.io/nvidia/nemo:26.02",
        "/lustre:/lustre",
        "torchrun",
        "--nnodes=2",
        "--nproc-per-node=8",
        "python -m nemotron.node.preflight --stage pretrain --config",
        "export NCCL_DEBUG=WARN",
        "export WANDB_PROJECT=p",
    ):
        assert flag in script, flag
    assert SECRET not in script and "x1y2x1y2" not in script and "WANDB_API_KEY" not in script
    assert not experiment_dir(exp).exists(), "a preview must not create the experiment"
    local = sbatch_preview(job, LOCAL)
    assert f"{job.stage.script} --config {job.train_yaml}" in local and "NEMOTRON_STAGE=pretrain" in local
