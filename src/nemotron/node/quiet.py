"""Known library warnings collapse to one line with a count at the end of a stage's log.

Why: a tiny chain's job logs carried ~20 copies of the same few library notices (transformers'
"falling back to its reference PyTorch implementation" once per kernel and process, torch's "No
CUDA runtime is found", deprecation notices from inside ModelOpt and lm-eval) that say nothing the
user can act on in this run and bury the lines that matter. Each notice listed in ``KNOWN`` is
counted instead of printed, by a filter on the logger that emits it and a hook on
``warnings.showwarning``; ``summary_lines()`` gives one line per notice seen, which the node runner
prints when the stage ends. Anything not listed here still prints as before. When stderr is not a
terminal (a job log), library progress bars are switched off as well.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KnownNotice:
    """A library message worth one summary line, not one line per occurrence."""

    pattern: str  # regex searched in the message
    summary: str  # the one line printed at the end
    loggers: tuple[str, ...] = ()  # logging loggers that emit it; empty = it comes through warnings.warn


KNOWN: tuple[KnownNotice, ...] = (
    KnownNotice(
        r"is falling back to its reference PyTorch implementation",
        "transformers: the optional Mamba kernels (causal_conv1d, mamba_ssm) are not installed; the reference "
        "PyTorch path runs instead (correct, slower)",
        ("transformers.integrations.hub_kernels",),
    ),
    KnownNotice(
        r"No CUDA runtime is found",
        "torch: no CUDA runtime on this machine (expected for the CPU backend)",
        ("torch.utils.cpp_extension",),
    ),
    KnownNotice(
        r"torch\.jit\.script` is deprecated", "torch: torch.jit.script is deprecated (called inside a library)"
    ),
    KnownNotice(r"is_gradient_checkpointing", "transformers: a renamed attribute read inside TRL (deprecation notice)"),
    KnownNotice(
        r"Custom kwargs can be passed to `--metadata`",
        "lm-eval: local tasks with a custom loader accept --metadata kwargs (nothing to do)",
        ("lm_eval.api.task",),
    ),
    KnownNotice(
        r"model kwarg is not of type `str`|Passed an already-initialized model through `pretrained`",
        "lm-eval: evaluating an already-loaded model object (intended: quantizers stay active)",
        ("lm_eval.models.huggingface",),
    ),
    KnownNotice(
        r"is not tested with current version of modelopt",
        "modelopt: the installed transformers is newer than ModelOpt's tested version",
    ),
)

_counts: dict[str, int] = {}
_installed = False


def _match(message: str) -> KnownNotice | None:
    return next((k for k in KNOWN if re.search(k.pattern, message)), None)


def _count(notice: KnownNotice) -> None:
    _counts[notice.summary] = _counts.get(notice.summary, 0) + 1


class _CountKnown(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        notice = _match(record.getMessage())
        if notice is None:
            return True
        _count(notice)
        return False


def install() -> None:
    """Start counting the known notices in this process (idempotent; imports no library)."""
    global _installed
    if _installed:
        return
    _installed = True
    counter = _CountKnown()
    for name in sorted({n for k in KNOWN for n in k.loggers}):
        logging.getLogger(name).addFilter(counter)  # the library's logger object, created ahead of it
    original = warnings.showwarning

    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None):
        notice = _match(str(message))
        if notice is None:
            return original(message, category, filename, lineno, file, line)
        _count(notice)
        return None

    warnings.showwarning = showwarning
    _no_progress_bars()


def _no_progress_bars() -> None:
    """Job logs are files: a library's tqdm bar there is one huge line of carriage returns and escape
    codes. ``TQDM_DISABLE`` covers bars that leave ``disable`` at its default; lm-eval passes
    ``disable=False`` explicitly, so when stderr is not a terminal every bar is turned off here."""
    import sys

    if sys.stderr.isatty():
        return
    try:
        from tqdm import std
    except ImportError:
        return
    original = std.tqdm.__init__

    def quiet_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    std.tqdm.__init__ = quiet_init  # type: ignore[method-assign]


def summary_lines() -> list[str]:
    """One line per known notice seen, with how often (empty when none was)."""
    return [f"library notice x{count}: {summary}" for summary, count in _counts.items()]


def reset() -> None:
    """Forget the counts (tests)."""
    _counts.clear()
