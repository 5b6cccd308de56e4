"""A 2-node job: restarts the local cluster with LOCAL_SLURM_NODES=2 (two slurmds on this machine)
for this module only, then restores the 1-node cluster so later tests find it as before.

Slow (~30-60 s, mostly the two restarts): marked ``slow``; run it with the rest of tests/slurm.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _jobkit import Captured, make_job, new_id

from nemotron.env.profiles import Profile
from nemotron.execution import states as st
from nemotron.execution.submit import submit
from nemotron.paths import REPO_ROOT

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = Path(os.environ.get("LOCAL_SLURM_SCRIPT", REPO_ROOT.parent / "shared" / "tools" / "local-slurm.sh"))


def _start(nodes: str) -> None:
    env = {**os.environ, "LOCAL_SLURM_NODES": nodes}
    proc = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[None]:
    if not SCRIPT.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{SCRIPT} not found (set LOCAL_SLURM_SCRIPT)")
        pytest.skip(f"{SCRIPT} not found (set LOCAL_SLURM_SCRIPT)")
    before = os.environ.get("LOCAL_SLURM_NODES", "1")
    _start("2")
    try:
        yield
    finally:
        _start(before)


def test_two_node_job(two_node_cluster: None) -> None:
    exp = new_id("sl-2n")
    body = (
        "import os\n"
        "e = os.environ\n"
        # one write per line: both tasks append to the same srun output file
        "os.write(1, f\"node {e['SLURM_NODEID']} of {e['SLURM_NNODES']} on {e['SLURMD_NODENAME']}\\n\".encode())\n"
    )
    job = make_job(exp, "wide", body, resources={"nodes": 2, "gpus_per_node": 1, "time": "00:05:00", "container": None})
    profile = Profile(name="two", executor="slurm", partition="batch")
    out = Captured()
    result = submit([job], profile, detach=False, write=out, interval=0.5)
    assert result.exit_code == 0, out.text
    assert result.jobs[0].state == st.SUCCEEDED
    host = socket.gethostname().split(".")[0]
    assert f"node 0 of 2 on {host}-1" in out.text, out.text
    assert f"node 1 of 2 on {host}-2" in out.text, out.text
    assert out.text.count("starting on") == 1  # only rank 0 announces and records state
