"""Entry point of the ``nemotron`` command.

Only Typer and the stage registry are imported here, so ``--help`` stays fast; every command imports
what it needs when it runs. User errors end as one line on stderr with exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

from nemotron.bytecode import enable_bytecode_cache

enable_bytecode_cache()  # before the heavy imports below: compile them once, not on every command

# Typer's rich help costs ~0.3 s of imports on every `--help`; plain Click help keeps the CLI under
# its 0.25 s budget. NEMOTRON_RICH_HELP=1 brings the rich panels back. Must be set before typer loads.
os.environ.setdefault("TYPER_USE_RICH", "1" if os.environ.get("NEMOTRON_RICH_HELP") == "1" else "0")

import typer  # noqa: E402

from nemotron.errors import UserError  # noqa: E402

PASSTHROUGH: list[str] = []
"""Arguments after a bare ``--``: handed unchanged to the stage's node script."""

ARGV: list[str] = []
"""The command line as the user typed it (recorded in job.yaml, secrets scrubbed)."""


def build_app() -> typer.Typer:
    from nemotron.cli import super3
    from nemotron.cli.help import new_app

    app = new_app(
        name="nemotron",
        help=(
            "Run the Nemotron 3 Super training recipe on Slurm through NeMo-Run, with artifact lineage.\n\n"
            "Errors are one line; add --debug to any command for the traceback."
        ),
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(super3.build_app(), name="super3", rich_help_panel="Recipes")
    _add_optional_commands(app)
    return app


def _add_optional_commands(app: typer.Typer) -> None:
    """Job, artifact and lineage commands (each module keeps heavy imports inside its functions)."""
    from nemotron.cli import artifacts, doctor, jobs, lineage

    jobs_panel, artifacts_panel = "Jobs", "Artifacts"
    app.command("status", help="Show the state of submitted experiments and their stages.", rich_help_panel=jobs_panel)(
        jobs.status
    )
    app.command("logs", help="Print (or --follow) the log of an experiment or job.", rich_help_panel=jobs_panel)(
        jobs.logs
    )
    app.command("cancel", help="Cancel a running experiment or job.", rich_help_panel=jobs_panel)(jobs.cancel)
    app.command(
        "lineage",
        help="Show where an artifact came from (or, with --down, what came of it).",
        rich_help_panel=artifacts_panel,
    )(lineage.lineage)
    app.add_typer(
        artifacts.app,
        name="artifacts",
        help="List, inspect and sync artifacts in the registry.",
        rich_help_panel=artifacts_panel,
    )
    app.command(
        "doctor",
        help="Run every GPU stage's node preflight on a cluster profile (1-node jobs).",
        rich_help_panel=jobs_panel,
    )(doctor.doctor)


def _report(error: UserError, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exception(error)
    sys.stderr.write(f"error: {error.one_line()}\n")
    return error.exit_code


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    ARGV[:] = ["nemotron", *args]
    if "--" in args:
        cut = args.index("--")
        PASSTHROUGH[:] = args[cut + 1 :]
        args = args[:cut]
    debug = "--debug" in args or os.environ.get("NEMOTRON_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        build_app()(args=args, prog_name="nemotron")
    except UserError as error:
        sys.exit(_report(error, debug))
    except OSError as exc:
        from nemotron.errors import from_os_error

        error = from_os_error(exc)
        if error is None:
            raise
        sys.exit(_report(error, debug))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
