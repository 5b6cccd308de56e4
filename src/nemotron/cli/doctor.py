"""``nemotron doctor PROFILE``: check a cluster before the first big submit (see nemotron.execution.doctor)."""

from __future__ import annotations

from typing import Annotated

import typer


def doctor(
    profile: Annotated[str, typer.Argument(help="A slurm profile from env.toml.", show_default=False)],
) -> None:
    """Submit one short 1-node job per GPU stage that runs its node preflight in the stage's container,
    and print one table: library versions against the pins, GPUs visible, shared filesystem writable,
    artifact registry reachable. Exit 0 when every check passed, 1 otherwise."""
    from nemotron.execution.doctor import run_doctor

    raise typer.Exit(run_doctor(profile))
