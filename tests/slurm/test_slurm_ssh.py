"""Submission through NeMo-Run's SSHTunnel to 127.0.0.1: a private sshd with a generated key.

Needs the openssh-server and openssh-client packages (installed by .ci/run). NeMo-Run rsyncs the
experiment over ssh with strict host key checking, so the test adds the server's key to
~/.ssh/known_hosts for its duration and removes exactly that line afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _jobkit import Captured, files_containing, make_job, new_id

from nemotron.env.profiles import Profile
from nemotron.execution import control
from nemotron.execution import states as st
from nemotron.execution.submit import submit
from nemotron.paths import nemotron_home

pytestmark = pytest.mark.slurm
SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict]:
    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen") and shutil.which("rsync")):
        message = "needs openssh-server, openssh-client and rsync (apt-get install openssh-server rsync)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    for name in ("client", "host"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {d / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    log = open(d / "sshd.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    known = Path.home() / ".ssh" / "known_hosts"
    made_dir, made_file = not known.parent.exists(), not known.exists()
    known.parent.mkdir(mode=0o700, exist_ok=True)
    host_key = " ".join((d / "host.pub").read_text().split()[:2])
    line = f"[127.0.0.1]:{port} {host_key}\n"
    with open(known, "a") as f:
        f.write(line)
    try:
        yield {"port": port, "identity": str(d / "client"), "remote": str(tmp_path / "remote-jobs")}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        kept = [ln for ln in known.read_text().splitlines(keepends=True) if ln != line]
        if made_file and not kept:  # leave ~/.ssh as we found it
            known.unlink()
            if made_dir and not any(known.parent.iterdir()):
                known.parent.rmdir()
        else:
            known.write_text("".join(kept))


def test_submit_over_ssh_tunnel(sshd: dict) -> None:
    secret = "wk-" + "a1b2" * 6
    profile = Profile(
        name="over-ssh",
        executor="slurm",
        tunnel="ssh",
        host="127.0.0.1",
        port=sshd["port"],
        user="root",
        identity=sshd["identity"],
        remote_job_dir=sshd["remote"],
        partition="batch",
        env_vars={"WANDB_API_KEY": secret},
    )
    exp = new_id("ssh")
    body = (
        "import os, sys\n"
        "cfg = sys.argv[sys.argv.index('--config') + 1]\n"
        "print('remote config', cfg, os.path.exists(cfg))\n"
        "print('has secret', os.environ.get('WANDB_API_KEY') == 'wk-' + 'a1b2' * 6)\n"
    )
    job = make_job(exp, "far", body)
    out = Captured()
    result = submit([job], profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 0, out.text
    assert result.jobs[0].state == st.SUCCEEDED
    remote_exp = Path(sshd["remote"]) / "nemotron" / f"nemotron_{exp}"
    # train.yaml travelled with NeMo-Run's rsync into the remote job dir, and the job read it there
    assert f"remote config {remote_exp}/far/code/far/train.yaml True" in out.text
    assert "has secret True" in out.text
    assert (remote_exp / "far" / "nemotron-state.json").exists()
    # status and logs go through the same SSH tunnel
    assert "SUCCEEDED" in control.status_text(exp)
    logs = Captured()
    assert control.print_logs(exp, write=logs) == 0 and "has secret True" in logs.text
    for root in (Path(sshd["remote"]), nemotron_home()):
        assert files_containing(root, secret) == []
