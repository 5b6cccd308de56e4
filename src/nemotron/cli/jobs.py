"""``nemotron status|logs|cancel``: look after submitted experiments (Slurm or local)."""

from __future__ import annotations

from typing import Annotated

import typer

IdArg = Annotated[
    str,
    typer.Argument(help="Experiment id (as printed at submission), a job id, or EXPERIMENT:STAGE.", show_default=False),
]


def status(
    id: Annotated[
        str | None,
        typer.Argument(help="Experiment or job id; without it, the most recent experiments.", show_default=False),
    ] = None,
) -> None:
    """Show the state of submitted experiments and their stages."""
    import sys

    from nemotron.execution.control import status_text

    sys.stdout.write(status_text(id))


def logs(
    id: IdArg,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines until the job ends.")] = False,
) -> None:
    """Print (or --follow) the log of an experiment or job."""
    from nemotron.execution.control import print_logs

    raise typer.Exit(print_logs(id, follow=follow))


def cancel(id: IdArg) -> None:
    """Cancel the unfinished jobs of an experiment (or one job)."""
    from nemotron.execution.control import cancel as cancel_jobs

    raise typer.Exit(cancel_jobs(id))
