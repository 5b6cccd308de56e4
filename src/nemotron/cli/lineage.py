"""`nemotron lineage NAME[:ALIAS]`: where an artifact came from (or, with --down, what used it).

``lineage`` is a plain function with typer annotations; cli/main.py registers it with
``app.command("lineage")(lineage)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nemotron.errors import UserError

FORMATS = ("tree", "json", "mermaid", "dot")


def lineage(
    ref: Annotated[str, typer.Argument(help="Artifact: NAME, NAME:ALIAS or NAME:vN.", show_default=False)],
    down: Annotated[bool, typer.Option("--down", help="Show descendants instead of ancestors.")] = False,
    format: Annotated[
        str, typer.Option("--format", "-f", help="tree (default), or an export: json, mermaid, dot.")
    ] = "tree",
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Tree with every detail: aliases, kind, job, config hash, time.")
    ] = False,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Registry root (default: $NEMOTRON_ARTIFACTS_ROOT, else env.toml [artifacts] root, else <NEMOTRON_HOME>/artifacts).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print an artifact's lineage: one line per node, name:vN ← stage (--long adds kind, job, config hash, time)."""
    if format not in FORMATS:
        raise UserError(f"unknown format '{format}'", hint=f"use one of {', '.join(FORMATS)}")
    from nemotron.artifacts.lineage import build_graph, render
    from nemotron.artifacts.registry import Registry, default_root

    graph = build_graph(Registry(root or default_root()), ref, down=down)
    out = render(graph, format, long=long)
    if format == "tree":
        from nemotron.console import make_console

        make_console().print(out)  # long lines wrap under their branch, never get cut
    else:
        sys.stdout.write(out)
