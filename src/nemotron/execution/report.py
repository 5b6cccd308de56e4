"""Render experiment states as the conventional rich table (experiment, stage, job id, state, elapsed)."""

from __future__ import annotations

import io
import shutil

from nemotron.execution import states as st
from nemotron.execution.records import ExperimentRecord

_STYLE = {
    st.SUCCEEDED: "green",
    st.RUNNING: "cyan",
    st.PENDING: "yellow",
    st.FAILED: "red",
    st.TIMEOUT: "red",
    st.CANCELLED: "magenta",
}


def status_table(
    record: ExperimentRecord | list[tuple[ExperimentRecord, dict[str, st.JobStatus]]],
    statuses: dict[str, st.JobStatus] | None = None,
    *,
    width: int | None = None,
) -> str:
    """The table as text (rich markup rendered; colour only when the terminal supports it)."""
    from rich.console import Console
    from rich.table import Table

    from nemotron.console import PIPED_WIDTH

    rows = [(record, statuses or {})] if isinstance(record, ExperimentRecord) else record
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for column in ("experiment", "stage", "job id", "state", "exit", "elapsed", "where / reason"):
        table.add_column(column, no_wrap=column in ("experiment", "job id", "state"))
    for rec, stats in rows:
        for i, job in enumerate(rec.jobs):
            s = stats.get(job.job_id, st.JobStatus())
            style = _STYLE.get(s.state, "")
            state = f"[{style}]{s.state}[/{style}]" if style else s.state
            where = s.reason if s.state in (st.PENDING, st.CANCELLED) or not s.nodes else s.nodes
            table.add_row(
                rec.experiment_id if i == 0 else "",
                job.stage,
                (job.native_id if rec.is_slurm else "") or job.job_id,
                state,
                "" if s.exit_code is None else str(s.exit_code),
                s.elapsed,
                where,
            )
    buf = io.StringIO()
    width = width or max(shutil.get_terminal_size((PIPED_WIDTH, 24)).columns, 100)
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(table)
    return buf.getvalue()
