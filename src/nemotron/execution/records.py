"""What we remember about a submitted experiment, so status/logs/cancel work from any later shell.

NeMo-Run persists its own view of an experiment (``_CONFIG``, ``_TASKS``), but reconstructing it
costs a NeMo-Run import and loses what we need most: the scheduler's reason and exit code, the
stage each task runs, and where the node writes its log and state marker. So ``submit`` writes
``nemotron.json`` next to NeMo-Run's files; ``nemotron status|logs|cancel`` read only that (and
ask Slurm), importing NeMo-Run just for SSH connections.

Nothing secret is stored here: the profile summary keeps host/user/identity *path* only.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.paths import nemorun_home

TITLE = "nemotron"
RECORD_FILE = "nemotron.json"
STATE_FILE = "nemotron-state.json"  # written by the node wrapper into the task directory


def nemo_experiment_id(experiment_id: str) -> str:
    """NeMo-Run ids are ``<title>_<suffix>`` (it splits on the last ``_``), so the suffix has none."""
    return f"{TITLE}_{experiment_id.replace('_', '-')}"


def experiments_dir() -> Path:
    """Where NeMo-Run keeps our experiments (under NEMORUN_HOME, as LocalTunnel requires)."""
    return nemorun_home() / "experiments" / TITLE


def experiment_dir(experiment_id: str) -> Path:
    return experiments_dir() / nemo_experiment_id(experiment_id)


@dataclass
class JobRecord:
    """One stage run inside an experiment, with every path as seen by the node that runs it."""

    stage: str
    job_id: str  # nemotron's job id (train.yaml job.id)
    task: str  # NeMo-Run task name
    job_dir: str  # nemotron's job directory (job.yaml, train.yaml) on the submit side
    task_dir: str  # NeMo-Run task directory as the node sees it (state marker, Slurm logs)
    local_task_dir: str  # the same directory on the submit side (differs with an SSH tunnel)
    depends_on: list[str] = field(default_factory=list)
    native_id: str = ""  # Slurm job id, or the local scheduler's app id
    job_name: str = ""  # Slurm job name (log file names derive from it)
    output_name: str = ""
    output_dir: str = ""

    @property
    def state_file(self) -> str:
        return os.path.join(self.task_dir, STATE_FILE)

    def slurm_log(self, restart: int = 0) -> str:
        """The srun output of attempt ``restart``: what the stage script printed (stdout and stderr).

        NeMo-Run names it ``log-<job name>_%j_${SLURM_RESTART_COUNT:-0}.out`` (nemo_run 0.11.1,
        nemo_run/core/execution/slurm.py) and submits with ``--requeue``: a requeued job writes a
        new file per attempt. ``monitor.slurm_log`` finds the latest one.
        """
        return os.path.join(self.task_dir, f"{self.slurm_log_prefix}{restart}.out")

    @property
    def slurm_log_prefix(self) -> str:
        """File name of the srun logs up to the restart count."""
        return f"log-{self.job_name}_{self.native_id}_"

    def sbatch_log(self) -> str:
        """The batch script's own output: Slurm/srun errors before the stage script starts."""
        return os.path.join(self.task_dir, f"sbatch_{self.job_name}_{self.native_id}.out")


@dataclass
class ExperimentRecord:
    experiment_id: str
    nemo_id: str
    created: float
    executor: str  # local | slurm
    profile: dict[str, Any]  # name, tunnel, host, user, port, identity, remote_job_dir (no secrets)
    jobs: list[JobRecord] = field(default_factory=list)
    exp_dir: str = ""
    runner: dict[str, Any] = field(default_factory=dict)  # local runs: host + pid of the process running them
    plan_key: str = ""  # what the jobs compute, without the experiment id (see execution.duplicates)

    @property
    def is_slurm(self) -> bool:
        return self.executor == "slurm"

    @property
    def path(self) -> Path:
        return Path(self.exp_dir) / RECORD_FILE

    def job(self, key: str) -> JobRecord:
        for job in self.jobs:
            if key in (job.job_id, job.stage, job.task, job.native_id):
                return job
        raise UserError(
            f"experiment {self.experiment_id} has no job '{key}'",
            hint=f"its stages: {', '.join(j.stage for j in self.jobs)}",
        )

    def save(self) -> None:
        """Atomic write: a reader never sees half a record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".nemotron-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)  # a full disk must not leave half-written temp files behind
            raise

    @classmethod
    def load(cls, path: Path) -> ExperimentRecord:
        """Read a record; a damaged one is a one-line ``UserError`` naming the file, never a traceback."""
        try:
            data = json.loads(Path(path).read_text())
            jobs = [JobRecord(**j) for j in data.pop("jobs", [])]
            return cls(**data, jobs=jobs)
        except (ValueError, TypeError, AttributeError) as exc:
            raise UserError(
                f"experiment record {path} is damaged ({type(exc).__name__}: {str(exc)[:80]})",
                hint="the experiment cannot be followed from here; inspect or delete that directory",
            ) from None


def all_records() -> list[ExperimentRecord]:
    """Every recorded experiment, oldest first."""
    root = experiments_dir()
    if not root.is_dir():
        return []
    records = []
    for path in root.glob(f"*/{RECORD_FILE}"):
        try:
            records.append(ExperimentRecord.load(path))
        except (OSError, UserError):
            continue  # a foreign or corrupt directory must not break `status`
    return sorted(records, key=lambda r: r.created)


def find(key: str) -> tuple[ExperimentRecord, JobRecord | None]:
    """Resolve an id the user typed: experiment id, NeMo-Run id, job id, or ``EXPERIMENT:stage``.

    Returns the experiment and, when the key named one job, that job.
    """
    exp_key, _, stage = key.partition(":")
    direct = experiment_dir(exp_key.removeprefix(f"{TITLE}_")) / RECORD_FILE
    if direct.is_file():
        record = ExperimentRecord.load(direct)
        return record, (record.job(stage) if stage else None)
    for record in reversed(all_records()):
        for job in record.jobs:
            if key in (job.job_id, job.native_id) and (record.is_slurm or key == job.job_id):
                return record, job
    recent = [r.experiment_id for r in all_records()[-5:]]
    raise UserError(
        f"no experiment or job '{key}' under {experiments_dir()}",
        hint=("recent experiments: " + ", ".join(recent)) if recent else "nothing has been submitted yet",
    )
