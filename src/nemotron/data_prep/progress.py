"""Progress for long data-prep runs: a rich bar (tokens/s, ETA) on a terminal, log lines otherwise.

Slurm logs are not terminals, so there the same numbers are printed as one plain line every
``interval`` seconds. ETA comes from input bytes (known up front), rate from tokens.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.1f}{unit}" if unit else f"{n:.0f}"
        n /= 1000
    return f"{n:.1f}P"


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Shows bytes done / total, docs, tokens, tokens/s and ETA for one rank's pending shards."""

    def __init__(
        self, title: str, total_bytes: int, total_shards: int, enabled: bool = True, interval: float = 30.0
    ) -> None:
        self.title = title
        self.total_bytes = max(1, total_bytes)
        self.total_shards = total_shards
        self.enabled = enabled
        self.interval = interval
        self.start = time.monotonic()
        self._last_log = self.start
        self._rich: Any = None
        self._task: Any = None
        self.bytes = self.docs = self.tokens = self.shards = 0
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[shards]}"),
                TextColumn("{task.fields[tokens]} tok"),
                TextColumn("{task.fields[rate]} tok/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(title, total=self.total_bytes, shards="", tokens="0", rate="-")

    def update(self, nbytes: int, docs: int, tokens: int, shards: int) -> None:
        """Set absolute counters (cheap; call as often as you like)."""
        self.bytes, self.docs, self.tokens, self.shards = nbytes, docs, tokens, shards
        if not self.enabled:
            return
        now = time.monotonic()
        rate = tokens / max(now - self.start, 1e-9)
        if self._rich is not None:
            self._rich.update(
                self._task,
                completed=min(nbytes, self.total_bytes),
                shards=f"{shards}/{self.total_shards} shards",
                tokens=_human(tokens),
                rate=_human(rate),
            )
        elif now - self._last_log >= self.interval:
            self._last_log = now
            print(self.line(), file=sys.stderr, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        frac = min(1.0, self.bytes / self.total_bytes)
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        rate = self.tokens / max(elapsed, 1e-9)
        eta_text = _clock(eta) if eta == eta else "?"
        docs = f"{_human(self.docs)} docs ({_human(self.docs / max(elapsed, 1e-9))}/s)"
        # stages that copy records without tokenizing (RL prompts) count no tokens: no "0 tokens, 0 tok/s"
        counted = f"{docs}, {_human(self.tokens)} tokens, {_human(rate)} tok/s" if self.tokens else docs
        return (
            f"{self.title}: {self.shards}/{self.total_shards} shards, {frac:.1%} of input, {counted}, "
            f"elapsed {_clock(elapsed)}, ETA {eta_text}"
        )

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        if self.enabled:
            print(self.line(), file=sys.stderr, flush=True)
