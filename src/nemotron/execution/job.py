"""The unit the submit side hands to an executor: one stage run with its job directory written.

``prepare`` (config side) creates it — job.yaml and train.yaml are on disk by then — and the
execution layer (executors, submit, dry-run preview) only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.pipeline.stages import Stage


@dataclass(frozen=True)
class PreparedJob:
    """A stage run ready to submit.

    ``train_cfg`` is exactly what train.yaml holds (resolved config + ``job:`` section);
    ``env`` holds non-secret environment variables for the task, ``secret_env_names`` the names of
    secrets to pass through from the submitting environment (values are never stored here).
    """

    stage: Stage
    job_id: str
    experiment_id: str
    job_dir: Path
    train_yaml: Path
    job_yaml: Path
    train_cfg: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    secret_env_names: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # job_ids of stages this one waits for (afterok)

    @property
    def resources(self) -> dict[str, Any]:
        """The ``resources`` section of the resolved config (nodes, gpus_per_node, time, container...)."""
        return self.train_cfg.get("resources", {})

    @property
    def output_dir(self) -> Path:
        return Path(self.train_cfg["job"]["output_dir"])
