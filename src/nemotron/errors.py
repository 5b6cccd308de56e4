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


# OSError numbers that mean "the place you pointed me at cannot take this write": a user-fixable
# setup problem (read-only mount, full disk, quota, a path component that is a file), not a bug.
_OS_HINTS = {
    "EROFS": "the file system is read-only: point NEMOTRON_HOME, output_dir or [artifacts] root at a writable one",
    "EACCES": "no permission: point NEMOTRON_HOME, output_dir or [artifacts] root at a directory you can write",
    "EPERM": "no permission: point NEMOTRON_HOME, output_dir or [artifacts] root at a directory you can write",
    "ENOSPC": "the disk is full: free space or point the path at another file system",
    "EDQUOT": "the disk quota is exceeded: free space or point the path at another file system",
    "ENOTDIR": "a parent of this path is a file, not a directory: choose another path",
    "EISDIR": "this path is a directory where a file was expected",
}


def from_os_error(exc: OSError) -> UserError | None:
    """The one-line ``UserError`` for a setup problem behind ``exc``, or None when it looks like a bug."""
    import errno

    name = errno.errorcode.get(exc.errno or -1, "")
    if name not in _OS_HINTS:
        return None
    where = exc.filename or "a file"
    return UserError(f"cannot write {where}: {exc.strerror or name}", hint=_OS_HINTS[name])
