"""Build real PreparedJobs whose payload is a tiny Python script, for execution and Slurm tests.

The job directory, train.yaml and job.yaml are written exactly where ``prepare`` would put them;
only the stage's script is replaced by ``payload.py`` in that directory (an absolute script path
is run as is by the node wrapper).
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import yaml

from nemotron.execution.job import PreparedJob
from nemotron.paths import jobs_root, nemotron_home
from nemotron.pipeline.stages import Port, Stage

CPU_RESOURCES = {"nodes": 1, "gpus_per_node": 0, "time": "00:05:00", "container": None}


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def make_job(
    experiment_id: str,
    name: str,
    body: str,
    *,
    depends_on: tuple[str, ...] = (),
    resources: dict[str, Any] | None = None,
    stage: Stage | None = None,
    env: dict[str, str] | None = None,
    secret_env_names: tuple[str, ...] = (),
    extra_cfg: dict[str, Any] | None = None,
    output_name: str | None = None,
    run: dict[str, str] | None = None,
    job_extra: dict[str, Any] | None = None,
) -> PreparedJob:
    """A job of stage ``name`` (or ``stage``) running ``python payload.py --config train.yaml``."""
    job_dir = jobs_root() / experiment_id / name
    job_dir.mkdir(parents=True, exist_ok=True)
    payload = job_dir / "payload.py"
    payload.write_text(body)
    if stage is None:
        stage = Stage(
            name=name, command=(name,), help="test stage", script="", inputs=(), output=Port("model", "model")
        )
    stage = dataclasses.replace(stage, script=str(payload))
    job_id = f"{experiment_id}--{name.replace('.', '-')}"
    output = output_name or f"test-{name.replace('.', '-')}"
    cfg: dict[str, Any] = {
        "backend": "tiny",
        "run": dict(run or {}),
        "output": {"name": output, "aliases": ["latest"]},
        "resources": dict(resources or CPU_RESOURCES),
        **(extra_cfg or {}),
        "job": {
            "id": job_id,
            "experiment": experiment_id,
            "stage": name,
            "config_name": "test",
            "config_hash": "0" * 64,
            "dir": str(job_dir),
            "output_dir": str(nemotron_home() / "outputs" / output / job_id),
            "artifacts_root": str(nemotron_home() / "artifacts"),
            "git_rev": "unknown",
            **(job_extra or {}),
        },
    }
    (job_dir / "train.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (job_dir / "job.yaml").write_text(yaml.safe_dump({"job_id": job_id, "stage": name}))
    return PreparedJob(
        stage=stage,
        job_id=job_id,
        experiment_id=experiment_id,
        job_dir=job_dir,
        train_yaml=job_dir / "train.yaml",
        job_yaml=job_dir / "job.yaml",
        train_cfg=cfg,
        env=dict(env or {}),
        secret_env_names=secret_env_names,
        depends_on=depends_on,
    )


class Captured:
    """A ``write`` callable for submit()/logs that keeps everything printed."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def __call__(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    hits = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle.encode() in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


def sacct(job_id: str, fields: str = "State,ExitCode") -> list[str]:
    """One job's accounting fields (``sacct -X -P``), for Slurm tests."""
    import subprocess

    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", fields], capture_output=True, text=True, check=True
    ).stdout
    return out.strip().splitlines()[0].split("|") if out.strip() else []
