"""`nemotron doctor PROFILE` against the real local cluster (no containers, fake GPUs, no GPU libraries).

The doctor goes through the stages' own execution path, so what it reports here is what this cluster
would do to a real submit: without a container the node's Python lacks Megatron-Bridge and sees no
GPU; with the stage's container the job dies before Python starts (no Pyxis). Both must be a clear
table, not a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.execution.doctor import run_doctor

pytestmark = pytest.mark.slurm

ENV_TOML = """
[cluster-bare]
executor = "slurm"
tunnel = "local"
partition = "batch"
time = "00:05:00"
container_image = ""

[cluster]
executor = "slurm"
tunnel = "local"
partition = "batch"
time = "00:05:00"
"""


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    path = tmp_path / "env.toml"
    path.write_text(ENV_TOML)
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(path))
    return path


def _doctor(profile: str, stages: tuple[str, ...]) -> tuple[int, str]:
    chunks: list[str] = []
    code = run_doctor(profile, write=chunks.append, stages=stages)
    return code, "".join(chunks)


def test_without_containers_the_node_python_lacks_the_libraries_and_gpus(env_file: Path) -> None:
    code, text = _doctor("cluster-bare", ("quantize",))
    assert code == 1, text
    assert "quantize  [no container]  PROBLEMS" in text
    assert "not checked: no container (resources.container is empty)" in text
    assert "FAIL  library megatron-bridge" in text and "import megatron.bridge failed in this environment" in text
    assert "ok    library megatron-core" in text  # the dev environment has megatron-core
    assert "FAIL  gpus" in text and "8 requested per node" in text  # fake GPUs: nvidia-smi/torch see none
    assert "ok    output dir" in text and "ok    artifact registry" in text
    assert "problems in: quantize" in text


def test_with_the_stage_container_the_job_dies_before_the_preflight(env_file: Path) -> None:
    code, text = _doctor("cluster", ("eval",))
    assert code == 1, text
    assert "eval  [nvcr.io/" in text and "PROBLEMS" in text
    assert "FAIL  job FAILED before the preflight ran" in text
    assert "containers need Pyxis/enroot on the cluster" in text
    assert "Traceback" not in text
