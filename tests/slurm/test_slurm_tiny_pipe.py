"""The tiny pipeline on the real local Slurm cluster: one experiment, afterok dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.tiny_checks import check_artifacts_and_lineage, check_learning, nemotron

ENV_TOML = """
[cluster]
executor = "slurm"
tunnel = "local"
partition = "batch"
container_image = ""   # no pyxis here: the task runs with this checkout's Python
time = "00:30:00"
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_pipe_on_slurm(tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text(ENV_TOML)
    home = tmp_path / "home"
    done = nemotron(
        ["super3", "pipe", "-c", "tiny", "--run", "cluster"], home, env={"NEMOTRON_ENV_FILE": str(env_file)}
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "SUCCEEDED" in done.stdout
    check_learning(check_artifacts_and_lineage(home))
