"""Keep secrets out of everything we write or print.

Secrets (WANDB_API_KEY, HF_TOKEN, anything named *_KEY, *_TOKEN, *_SECRET, *PASSWORD) reach jobs only
as environment variables at submit time; job.yaml, train.yaml, dry-run output and logs carry a
redaction marker instead of the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***redacted***"
_SECRET_NAME = re.compile(r"(^|_)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|API_?KEY", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for names that must never be written or shown with their value."""
    return bool(_SECRET_NAME.search(name.replace("-", "_")))


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret-named mapping entry replaced by ``REDACTED``."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_name(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def scrub_text(text: str, secret_values: list[str]) -> str:
    """Replace literal secret values inside free text (e.g. a rendered sbatch script or a log line)."""
    for secret in sorted((s for s in secret_values if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
