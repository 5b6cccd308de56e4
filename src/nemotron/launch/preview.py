"""What the execution layer would run for a prepared job, for the dry-run plan."""

from __future__ import annotations

from typing import Any

from nemotron.execution.job import PreparedJob


def execution_preview(job: PreparedJob, profile: Any) -> tuple[str, str, str]:
    """``(title, text, lexer)``: the sbatch script NeMo-Run would submit, or the local command."""
    from nemotron.execution.preview import sbatch_preview

    text = sbatch_preview(job, profile)
    title = "sbatch script (NeMo-Run dryrun)" if profile.is_slurm else "command (local executor)"
    return title, text, "bash"
