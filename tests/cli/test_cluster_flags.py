"""Cluster conventions on the command line and in profiles: --partition/--account/--qos/--time/--nodes,
extra sbatch flags per profile, and Slurm job names that start with the stage (dry-run preview)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import run_cli


@pytest.fixture(autouse=True)
def devnull_stdin(monkeypatch: pytest.MonkeyPatch):
    """NeMo-Run's sbatch preview shells out through invoke, which reads stdin; pytest's captured one raises."""
    import os
    import sys

    with open(os.devnull) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield


def test_command_line_cluster_flags_and_profile_sbatch_flags_reach_the_sbatch_script(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = home.parent / "flags.toml"
    env.write_text(
        '[cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\ntunnel = "local"\ncontainer_image = ""\n'
        '[cluster.sbatch]\nmem = "64G"\nexclusive = true\nconstraint = "a100"\nreservation = "maint"\n'
    )
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env))
    args = ["--partition", "p2", "--account", "a2", "--qos", "high", "--time", "01:30:00", "--nodes", "2"]
    code, out, err = run_cli(["super3", "data", "prep", "rl", "-c", "tiny", "-d", "-r", "cluster", *args], capsys)
    assert code == 0, err
    for line in (
        "--partition=p2", "--account=a2", "--qos=high", "--time=01:30:00", "--nodes=2",
        "--mem=64G", "--exclusive", "--constraint=a100", "--reservation=maint", "--job-name=prep-rl.nemotron",
    ):  # fmt: skip
        assert f"#SBATCH {line}" in out, line
    code, out, err = run_cli(["super3", "pipe", "-c", "tiny", "-d", "-r", "cluster", "--partition", "p3"], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("toml", "args", "needle"),
    [
        ("", ["--partition", "p2"], "--partition applies to Slurm, but profile 'local' runs locally"),
        ("", ["-r", "cluster", "--time", "soon"], "--time 'soon' is not a Slurm time limit"),
        ('[cluster.sbatch]\npartition = "x"\n', ["-r", "cluster"], "sbatch.partition is set by nemotron itself"),
        ('[cluster.sbatch]\nmem = ["1G"]\n', ["-r", "cluster"], "sbatch.mem must be a string, a number or true"),
    ],
    ids=["partition-local", "bad-time", "managed-flag", "bad-value"],
)
def test_bad_cluster_flags_are_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, toml, args, needle
) -> None:
    env = home.parent / "bad.toml"
    env.write_text('[cluster]\nexecutor = "slurm"\ntunnel = "local"\ncontainer_image = ""\n' + toml)
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env))
    code, out, err = run_cli(["super3", "data", "prep", "rl", "-c", "tiny", "-d", *args], capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and needle in err, err
