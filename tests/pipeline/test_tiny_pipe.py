"""`nemotron super3 pipe -c tiny`: the whole chain for real on the CPU, then a rerun that skips it all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.tiny_checks import OUTPUTS, check_artifacts_and_lineage, check_learning, nemotron


@pytest.mark.slow
def test_tiny_pipe_runs_end_to_end_then_skips(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = nemotron(["super3", "pipe", "-c", "tiny"], home)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    registry = check_artifacts_and_lineage(home)
    numbers = check_learning(registry)
    print(numbers)

    again = nemotron(["super3", "pipe", "-c", "tiny"], home, timeout=300)
    assert again.returncode == 0, again.stderr
    for stage in ("data_prep.pretrain", "pretrain", "sft", "rl.rlvr", "quantize", "eval"):
        assert stage in again.stdout
    assert again.stdout.count("skip") >= len(OUTPUTS), again.stdout
    assert all(len(registry.versions(name)) == 1 for name in OUTPUTS)  # nothing re-ran
