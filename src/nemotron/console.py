"""One way to make a rich Console for command output.

Rich falls back to 80 columns when stdout is not a terminal (a pipe, a CI log, Slurm output), which
folds tables of artifact names and job ids into unreadable columns. Piped output gets a wide,
colourless console instead, like ``ls -l`` or ``squeue`` would print.
"""

from __future__ import annotations

import os
import sys

PIPED_WIDTH = 160


def make_console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH, color_system=None, soft_wrap=False)
