"""Run a command where Slurm lives: this machine (login node) or a cluster reached over SSH.

Status, logs and cancel need only a handful of commands (sacct, squeue, scancel, tail) and file
reads; both tunnels offer them through this small interface. The SSH side reuses NeMo-Run's
``SSHTunnel`` (paramiko/fabric), so key handling and ``~/.ssh`` conventions match submission.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Any, Protocol

from nemotron.errors import UserError


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Shell(Protocol):
    def run(self, command: str, timeout: float = 60) -> Result: ...

    def read_from(self, path: str, offset: int) -> bytes: ...

    def close(self) -> None: ...


class LocalShell:
    """Commands and files on this machine."""

    def run(self, command: str, timeout: float = 60) -> Result:
        proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def read_from(self, path: str, offset: int) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        pass


class SSHShell:
    """Commands and files on a remote login node through NeMo-Run's SSHTunnel."""

    def __init__(self, host: str, user: str, port: int | None = None, identity: str | None = None) -> None:
        from nemotron.execution.nemorun import nemo_run

        run = nemo_run()
        self.tunnel = run.SSHTunnel(host=host, user=user, port=port, identity=identity, job_dir="/tmp")
        self._connected = False

    def _connect(self) -> None:
        if self._connected:
            return
        connect_tunnel(self.tunnel)
        self._connected = True

    def run(self, command: str, timeout: float = 60) -> Result:
        self._connect()
        res = self.tunnel.run(command, hide=True, warn=True, timeout=timeout)
        return Result(res.return_code, res.stdout, res.stderr)

    def read_from(self, path: str, offset: int) -> bytes:
        self._connect()
        res = self.tunnel.session.run(
            f"tail -c +{offset + 1} {shlex.quote(path)} 2>/dev/null", hide=True, warn=True, encoding="latin-1"
        )
        return res.stdout.encode("latin-1") if res.return_code == 0 else b""

    def close(self) -> None:
        if self._connected:
            self.tunnel.cleanup()
            self._connected = False


def connect_tunnel(tunnel: Any) -> None:
    """Open an SSHTunnel, turning NeMo-Run's ``sys.exit(1)`` on auth failure into a UserError."""
    try:
        tunnel.connect()
    except SystemExit as exc:
        raise UserError(
            f"cannot log in to {tunnel.user}@{tunnel.host} over SSH",
            hint="check host/user/port/identity in the env.toml profile (the key must be authorized there)",
        ) from exc
    except OSError as exc:
        raise UserError(f"cannot reach {tunnel.host} over SSH: {exc}", hint="check host/port in env.toml") from exc


def shell_for(profile: dict[str, Any]) -> Shell:
    """The shell for a recorded profile summary (see ``records.ExperimentRecord.profile``)."""
    if profile.get("executor") == "slurm" and profile.get("tunnel") == "ssh":
        return SSHShell(profile["host"], profile["user"], profile.get("port"), profile.get("identity"))
    return LocalShell()
