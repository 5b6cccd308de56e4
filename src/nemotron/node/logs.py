"""Plain, timestamped log lines that stay readable when many ranks share one Slurm log file."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "nemotron.node"


def setup_logging(rank: int, level: int = logging.INFO) -> logging.Logger:
    """``2026-01-02 03:04:05 INFO [rank 0] message`` on stderr; idempotent."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "_nemotron_node", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s [rank {rank}] %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        handler._nemotron_node = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
