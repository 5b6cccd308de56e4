"""The one exception type that reaches the user as a one-line message.

Anything the user can fix (bad config key, unknown profile, missing artifact, ...) raises
``UserError``. The CLI prints ``error: <message>`` (plus ``hint: <fix>`` on the same line when given)
and exits with code 2 without a traceback; ``--debug`` shows the traceback. Every other exception
is a bug and is shown in full.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input, with the fix when we know it."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text += f" — {self.hint}"
        return text.replace("\n", " ")
