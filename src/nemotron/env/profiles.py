"""env.toml: where jobs run (execution profiles) plus the ``[wandb]`` and ``[artifacts]`` sections.

The file is looked up once per command: ``$NEMOTRON_ENV_FILE`` if set, otherwise the first
``env.toml`` found walking up from the current directory. Every top-level table other than the
reserved sections is a profile; a profile may ``extends`` another one (chains allowed, cycles are
an error). Keys are checked strictly so a typo such as ``partiton`` fails here instead of silently
submitting to the default partition of a 500-GPU cluster.

Secrets (e.g. ``WANDB_API_KEY`` under ``env_vars``) may live in the file; ``Profile`` never shows
their values (see ``nemotron.env.secrets``) and the execution layer passes them to jobs only as
environment variables.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nemotron.env.secrets import REDACTED, is_secret_name
from nemotron.errors import UserError
from nemotron.paths import default_artifacts_root

ENV_FILE_NAME = "env.toml"
ENV_FILE_VAR = "NEMOTRON_ENV_FILE"
RESERVED_SECTIONS = frozenset({"wandb", "artifacts"})
# [wandb] keys the mirror reads (nemotron.artifacts.wandb_mirror.WandbSettings) plus the secret
# api_key (kept out of job files by redaction).
WANDB_KEYS = frozenset(
    {"project", "entity", "mode", "dir", "base_url", "init_timeout", "http_timeout", "sync_timeout", "api_key"}
)
EXECUTORS = ("local", "slurm")
TUNNELS = ("local", "ssh")
_SLURM_TIME = re.compile(r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$")  # same rule as the config schema

# Profile keys that are also resource requests: they become config overrides so that the merged
# config (default <- named <- profile <- command line) is the single truth the job is built from.
RESOURCE_KEYS: dict[str, str] = {
    "nodes": "resources.nodes",
    "gpus_per_node": "resources.gpus_per_node",
    "ntasks_per_node": "resources.ntasks_per_node",
    "time": "resources.time",
    "container_image": "resources.container",
}


@dataclass(frozen=True)
class Profile:
    """One resolved execution profile (``extends`` already applied).

    ``None`` means "not set here": the stage config's value is used. ``container_image = ""`` in
    env.toml explicitly removes the container (jobs run with the node's Python).
    """

    name: str
    executor: str = "local"
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    nodes: int | None = None
    gpus_per_node: int | None = None
    ntasks_per_node: int | None = None
    time: str | None = None
    container_image: str | None = None
    container_mounts: tuple[str, ...] = ()
    tunnel: str = "local"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    remote_job_dir: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    job_dir: str | None = None
    python: str | None = None
    code_dir: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    sbatch: Mapping[str, Any] = field(default_factory=dict)  # extra #SBATCH flags: mem, exclusive, constraint, ...

    def __repr__(self) -> str:  # never show secret values, even in a traceback
        shown = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, (), {})}
        shown["env_vars"] = self.public_env()
        shown["env_vars"].update({k: REDACTED for k in self.secret_env_names()})
        body = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"Profile({body})"

    __str__ = __repr__

    @property
    def is_slurm(self) -> bool:
        return self.executor == "slurm"

    @property
    def config_overrides(self) -> dict[str, object]:
        """Dotted config keys this profile sets: its ``[<name>.overrides]`` table plus resource keys."""
        out: dict[str, object] = dict(self.overrides)
        for key, dotted in RESOURCE_KEYS.items():
            value = getattr(self, key)
            if value is None:
                continue
            if key == "container_image" and value == "":
                value = None  # explicit "no container"
            out[dotted] = value
        return out

    def with_cluster_flags(self, flags: Mapping[str, Any] | None) -> Profile:
        """This profile with ``--partition/--account/--qos/--time/--nodes`` from the command line on top."""
        if not flags:
            return self
        slurm_only = sorted(k for k in ("partition", "account", "qos") if k in flags)
        if slurm_only and not self.is_slurm:
            raise UserError(
                f"--{slurm_only[0]} applies to Slurm, but profile '{self.name}' runs locally",
                hint="add --run PROFILE or --batch PROFILE with a Slurm profile from env.toml",
            )
        time = flags.get("time")
        if time is not None and not _SLURM_TIME.match(str(time)):
            raise UserError(f"--time '{time}' is not a Slurm time limit such as 04:00:00")
        nodes = flags.get("nodes")
        if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1):
            raise UserError(f"--nodes must be a positive integer, got {nodes!r}")
        return replace(
            self, **{k: v for k, v in flags.items() if k in ("partition", "account", "qos", "time", "nodes")}
        )

    def secret_env_names(self) -> tuple[str, ...]:
        """Names of ``env_vars`` entries that are secrets (their values are never written or shown)."""
        return tuple(sorted(k for k in self.env_vars if is_secret_name(k)))

    def public_env(self) -> dict[str, str]:
        """``env_vars`` without the secrets: safe to write into sbatch scripts and job files."""
        return {k: v for k, v in self.env_vars.items() if not is_secret_name(k)}

    def secret_env(self) -> dict[str, str]:
        """The secret ``env_vars`` with their values, for the submitting process's environment only."""
        return {k: v for k, v in self.env_vars.items() if is_secret_name(k)}

    def describe(self) -> str:
        """One line for humans: ``slurm via ssh me@login (account a, partition p)``."""
        if not self.is_slurm:
            return f"{self.name}: local executor"
        where = f"ssh {self.user or ''}@{self.host}" if self.tunnel == "ssh" else "local tunnel (login node)"
        bits = [
            f"account {self.account}" if self.account else "",
            f"partition {self.partition}" if self.partition else "",
        ]
        extra = ", ".join(b for b in bits if b)
        return f"{self.name}: slurm via {where}" + (f" ({extra})" if extra else "")


_FIELD_NAMES = [f.name for f in fields(Profile) if f.name != "name"]
_PROFILE_KEYS = frozenset(_FIELD_NAMES) | {"extends"}
_INT_KEYS = ("nodes", "gpus_per_node", "ntasks_per_node", "port")
_STR_KEYS = (
    "executor",
    "account",
    "partition",
    "qos",
    "time",
    "container_image",
    "tunnel",
    "host",
    "user",
    "identity",
    "remote_job_dir",
    "job_dir",
    "python",
    "code_dir",
    "extends",
)

BUILTIN_LOCAL = Profile(name="local", executor="local")


@dataclass(frozen=True)
class EnvFile:
    """A parsed env.toml (or the empty default when there is none)."""

    path: Path | None
    raw_profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    wandb: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def profiles(self) -> dict[str, Profile]:
        """Every profile of the file, resolved (``extends`` applied)."""
        return {name: self.profile(name) for name in self.raw_profiles}

    @property
    def artifacts_root(self) -> Path:
        """``$NEMOTRON_ARTIFACTS_ROOT`` (tests, one-off runs) over ``[artifacts] root`` over the default."""
        override = os.environ.get("NEMOTRON_ARTIFACTS_ROOT")
        return Path(override).expanduser() if override else Path(self.artifacts["root"])

    def known(self) -> list[str]:
        names = list(self.raw_profiles)
        if "local" not in names:
            names.append("local")
        return names

    def profile(self, name: str) -> Profile:
        """Resolve ``name`` through its ``extends`` chain; unknown names list the known ones."""
        if name not in self.raw_profiles:
            if name == "local":
                return BUILTIN_LOCAL
            where = str(self.path) if self.path else "no env.toml found"
            raise UserError(
                f"unknown profile '{name}' ({where})",
                hint=f"known profiles: {', '.join(self.known())}",
            )
        chain: list[str] = []
        merged: dict[str, Any] = {}
        current: str | None = name
        while current is not None:
            if current in chain:
                cycle = " -> ".join([*chain, current])
                raise UserError(f"profile 'extends' cycle: {cycle}", hint=f"fix 'extends' in {self.path}")
            if current not in self.raw_profiles:
                raise UserError(
                    f"profile '{chain[-1]}' extends unknown profile '{current}'",
                    hint=f"known profiles: {', '.join(self.raw_profiles)}",
                )
            chain.append(current)
            current = self.raw_profiles[current].get("extends")
        for link in reversed(chain):  # base first, the named profile last (it wins)
            for key, value in self.raw_profiles[link].items():
                if key == "extends":
                    continue
                if key in ("env_vars", "overrides", "sbatch") and key in merged:
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
        return _build_profile(name, merged, self.path)


def find_env_file(start: Path | None = None) -> Path | None:
    """``$NEMOTRON_ENV_FILE`` if set, else the nearest ``env.toml`` from ``start`` (cwd) upward."""
    explicit = os.environ.get(ENV_FILE_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"{ENV_FILE_VAR}={explicit} does not exist", hint="point it at an env.toml or unset it")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / ENV_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_env(path: Path | None = None) -> EnvFile:
    """Parse env.toml (found with ``find_env_file`` when ``path`` is None); no file -> empty EnvFile."""
    path = path if path is not None else find_env_file()
    if path is None:
        return EnvFile(path=None, artifacts={"root": str(default_artifacts_root())})
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UserError(f"env file {path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    profiles: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in RESERVED_SECTIONS:
            continue
        if not isinstance(value, dict):
            raise UserError(
                f"{path}: top-level key '{key}' must be a [section]",
                hint="profiles are tables such as [my-cluster]; see env.example.toml",
            )
        unknown = sorted(set(value) - _PROFILE_KEYS)
        if unknown:
            raise UserError(
                f"{path}: profile [{key}] has unknown key(s) {', '.join(unknown)}",
                hint=f"valid keys: {', '.join(sorted(_PROFILE_KEYS))}",
            )
        profiles[key] = value
    wandb = data.get("wandb") or {}
    if not isinstance(wandb, dict):
        raise UserError(f"{path}: 'wandb' must be a [wandb] section")
    for key in wandb:
        if key not in WANDB_KEYS:
            import difflib

            close = difflib.get_close_matches(key, sorted(WANDB_KEYS), n=1)
            raise UserError(
                f"{path}: [wandb] has unknown key '{key}'" + (f" (did you mean {close[0]}?)" if close else ""),
                hint=f"valid keys: {', '.join(sorted(WANDB_KEYS))} (a typo would silently disable W&B)",
            )
    artifacts = dict(data.get("artifacts") or {})
    root = artifacts.get("root")
    artifacts["root"] = str(_resolve_path(root, Path(path).parent) if root else default_artifacts_root())
    return EnvFile(path=Path(path), raw_profiles=profiles, wandb=dict(data.get("wandb") or {}), artifacts=artifacts)


def _resolve_path(value: str, base: Path) -> Path:
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"train_iters": 3}}`` and ``{"train.train_iters": 3}`` both -> dotted keys."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


# sbatch flags nemotron sets itself from dedicated keys (or must own: logs, dependencies, job name)
MANAGED_SBATCH = {
    "account": "account",
    "partition": "partition",
    "qos": "qos",
    "nodes": "nodes",
    "time": "time",
    "ntasks-per-node": "ntasks_per_node",
    "gpus-per-node": "gpus_per_node",
    "job-name": "",
    "output": "",
    "error": "",
    "dependency": "",
    "comment": "",
    "container-image": "container_image",
    "container-mounts": "container_mounts",
}
_SBATCH_KEY = re.compile(r"^[a-z][a-z0-9-]*$")


def check_sbatch_flags(flags: Any, where: str) -> dict[str, Any]:
    """A profile's ``[<name>.sbatch]`` table: extra ``#SBATCH --key=value`` lines (``true`` = bare flag).

    E.g. ``mem = "64G"``, ``exclusive = true``, ``constraint = "a100"``, ``reservation = "maint"``.
    Flags nemotron sets from their own keys (or owns: logs, dependencies) are refused here.
    """
    if not isinstance(flags, dict):
        raise UserError(f'{where} sbatch must be a table such as {{ mem = "64G", exclusive = true }}')
    out: dict[str, Any] = {}
    for raw_key, value in flags.items():
        key = str(raw_key).replace("_", "-")
        if not _SBATCH_KEY.match(key):
            raise UserError(f"{where} sbatch key '{raw_key}' is not an sbatch option name (e.g. mem, constraint)")
        if key in MANAGED_SBATCH:
            own = MANAGED_SBATCH[key]
            raise UserError(
                f"{where} sbatch.{raw_key} is set by nemotron itself",
                hint=f"use the profile key {own} (or --{own.replace('_', '-')})" if own else "leave it out",
            )
        if isinstance(value, bool):
            if value:
                out[key] = True
            continue
        if not isinstance(value, str | int | float) or isinstance(value, str) and not value.strip():
            raise UserError(f"{where} sbatch.{raw_key} must be a string, a number or true, got {value!r}")
        out[key] = value
    return out


def _build_profile(name: str, merged: dict[str, Any], path: Path | None) -> Profile:
    where = f"{path}: [{name}]"
    kwargs: dict[str, Any] = {}
    for key in _STR_KEYS:
        if key in merged and key != "extends":
            if not isinstance(merged[key], str):
                raise UserError(f"{where} {key} must be a string, got {merged[key]!r}")
            kwargs[key] = merged[key]
    for key in _INT_KEYS:
        if key in merged:
            value = merged[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "gpus_per_node" else 1):
                raise UserError(f"{where} {key} must be a positive integer, got {value!r}")
            kwargs[key] = value
    mounts = merged.get("container_mounts", [])
    if not isinstance(mounts, list) or not all(isinstance(m, str) for m in mounts):
        raise UserError(f"{where} container_mounts must be a list of 'src:dst' strings")
    kwargs["container_mounts"] = tuple(os.path.expandvars(m) for m in mounts)
    env_vars = merged.get("env_vars", {})
    if not isinstance(env_vars, dict) or any(isinstance(v, dict | list) for v in env_vars.values()):
        raise UserError(f'{where} env_vars must be a table of NAME = "value"')
    kwargs["env_vars"] = {str(k): str(v) for k, v in env_vars.items()}
    overrides = merged.get("overrides", {})
    if not isinstance(overrides, dict):
        raise UserError(f"{where} overrides must be a table of dotted.key = value")
    kwargs["overrides"] = _flatten(overrides)
    kwargs["sbatch"] = check_sbatch_flags(merged.get("sbatch", {}), where)

    profile = Profile(name=name, **kwargs)
    if profile.executor not in EXECUTORS:
        raise UserError(f"{where} executor must be one of {', '.join(EXECUTORS)}, got '{profile.executor}'")
    if profile.tunnel not in TUNNELS:
        raise UserError(f"{where} tunnel must be one of {', '.join(TUNNELS)}, got '{profile.tunnel}'")
    if profile.is_slurm and profile.tunnel == "ssh":
        if not profile.host:
            raise UserError(f'{where} tunnel = "ssh" needs host', hint='add host = "login.my-cluster.org"')
        if not profile.remote_job_dir:
            raise UserError(
                f'{where} tunnel = "ssh" needs remote_job_dir',
                hint="a directory on the cluster's shared filesystem for job files and logs",
            )
        updates: dict[str, Any] = {"user": profile.user or getpass.getuser()}
        if profile.identity:
            updates["identity"] = str(Path(profile.identity).expanduser())
        profile = replace(profile, **updates)
    if profile.time is not None and not _SLURM_TIME.match(profile.time):
        raise UserError(f"{where} time '{profile.time}' is not a Slurm time limit such as 04:00:00")
    return profile
