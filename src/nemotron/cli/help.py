"""Help layout without Rich: commands grouped in panels, each with its whole first paragraph.

Why our own formatter: Typer's Rich help costs ~0.3 s of imports on every ``--help`` (see
docs/performance.md), while Click's plain help lists every command in one block and cuts each
description at the terminal width, often mid-sentence. ``PanelGroup`` keeps Click's plain rendering
but reads each command's ``rich_help_panel`` (the same attribute Typer's Rich help uses, so
``NEMOTRON_RICH_HELP=1`` shows the same panels) and writes one section per panel, wrapping rather
than cutting the text.

It also turns off Typer's own "Did you mean ...?" on a mistyped command: Click >= 8.2 already adds
the suggestion, and with both the message said it twice.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperGroup

DEFAULT_PANEL = "Commands"
PANEL_ORDER = (
    "Recipes",
    "Data",
    "Checkpoints",
    "Training",
    "Quantization",
    "Evaluation",
    "Pipeline",
    "Configs",
    "Jobs",
    "Artifacts",
)
"""Panels are shown in this order; a panel not listed here follows them, in order of first use."""


def summary(command: click.Command) -> str:
    """The command's short help, or the first paragraph of its help, on one line and never cut."""
    text = command.short_help or command.help or ""
    first = text.strip().split("\n\n", 1)[0]
    return " ".join(first.replace("\b", "").split())


class PanelGroup(TyperGroup):
    """A Typer group whose plain help lists commands by panel with their full descriptions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["suggest_commands"] = False  # Click already suggests; Typer would repeat it
        super().__init__(*args, **kwargs)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            panel = getattr(command, "rich_help_panel", None) or DEFAULT_PANEL
            panels.setdefault(panel, []).append((name, summary(command)))
        known = [p for p in PANEL_ORDER if p in panels]
        for panel in known + [p for p in panels if p not in known]:
            with formatter.section(panel):
                formatter.write_dl(panels[panel])


def new_app(**kwargs: Any) -> typer.Typer:
    """A ``typer.Typer`` rendering its help with ``PanelGroup``; every app of the CLI is made here."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(cls=PanelGroup, **kwargs)
