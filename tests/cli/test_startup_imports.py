"""Speed rule: --help and --dry-run never import nemo_run, wandb or torch (timings: benchmarks/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("nemo_run", "wandb", "torch", "transformers", "megatron")
PROBE = """
import json, sys
from nemotron.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(%r)))
sys.stderr.write('HEAVY=' + json.dumps(heavy) + '\\n')
"""


def heavy_imports(args: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, done.stderr
    return json.loads(line[-1][6:])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["super3", "--help"],
        ["super3", "pretrain", "--help"],
        ["super3", "rl", "rlvr", "--help"],
        ["super3", "pretrain", "--dry-run"],
        ["super3", "sft", "-d", "-c", "lora"],
        ["super3", "config", "ls"],
    ],
    ids=lambda a: " ".join(a),
)
def test_no_heavy_imports(args: list[str], tmp_path: Path) -> None:
    env = {"NEMOTRON_HOME": str(tmp_path / "home"), "NEMOTRON_ENV_FILE": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    assert heavy_imports(args, env) == []


def test_slurm_dry_run_imports_only_nemo_run(tmp_path: Path) -> None:
    """The sbatch preview is NeMo-Run's own dryrun, so nemo_run is allowed there; wandb/torch are not."""
    env_file = tmp_path / "env.toml"
    env_file.write_text('[c]\nexecutor = "slurm"\naccount = "a"\npartition = "p"\n')
    env = {"NEMOTRON_HOME": str(tmp_path / "home"), "NEMOTRON_ENV_FILE": str(env_file)}
    assert set(heavy_imports(["super3", "pretrain", "-d", "-r", "c"], env)) <= {"nemo_run"}
