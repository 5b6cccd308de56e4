"""What an artifact is: an immutable, versioned pointer to data plus the run that produced it.

The registry stores data by reference (``path``), never by copy, so an ``Artifact`` is small and
cheap to pass around; lineage lives in ``inputs`` (exact ``name:vN`` references, never aliases, so
the graph cannot change after the fact) and ``run`` (which stage, job and config made it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from nemotron.errors import UserError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""Artifact names and aliases: start alphanumeric, then letters, digits, ``.``, ``_``, ``-``.

No ``/`` and no leading ``.`` means a name can never escape the registry root or hide as a dot
file; the registry keeps its own files under names a valid artifact name cannot take.
"""

VERSION_RE = re.compile(r"^v(\d+)$")
KIND_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
DEFAULT_ALIAS = "latest"


MAX_NAME = 128  # NAME_RE allows 1 + 127 characters


def validate_name(name: str, what: str = "artifact name") -> str:
    """Return ``name`` if it is a safe artifact name, else raise ``UserError`` (no path traversal)."""
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise UserError(
            f"{what} '{name[:40]}…' is {len(name)} characters long, more than the registry's {MAX_NAME}",
            hint="pick a shorter name",
        )
    if not isinstance(name, str) or not NAME_RE.match(name) or name.endswith(".json"):
        raise UserError(
            f"'{name}' is not a valid {what}",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def validate_alias(alias: str) -> str:
    """Aliases follow name rules; ``vN`` is reserved for versions so ``NAME:v3`` is never ambiguous."""
    validate_name(alias, "alias")
    if VERSION_RE.match(alias):
        raise UserError(f"alias '{alias}' looks like a version", hint="vN is reserved; pick another alias")
    return alias


def validate_kind(kind: str) -> str:
    """Artifact kinds are lower-case slugs such as ``model`` or ``sft-data``."""
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise UserError(f"'{kind}' is not a valid artifact kind", hint="lower-case letters, digits and '-'")
    return kind


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``NAME`` (= ``NAME:latest``), ``NAME:vN`` or ``NAME:ALIAS``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:v{self.version}"
        return f"{self.name}:{self.alias or DEFAULT_ALIAS}"


def parse_ref(ref: str) -> Ref:
    """Parse ``NAME[:vN|:ALIAS]``; raises ``UserError`` on anything else."""
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"'{ref}' is not an artifact reference", hint="use NAME, NAME:latest or NAME:v3")
    name, sep, tail = ref.strip().partition(":")
    validate_name(name)
    if not sep:
        return Ref(name, alias=DEFAULT_ALIAS)
    match = VERSION_RE.match(tail)
    if match:
        version = int(match.group(1))
        if version < 1:
            raise UserError(f"'{ref}': versions start at v1")
        return Ref(name, version=version)
    validate_name(tail, "alias")
    return Ref(name, alias=tail)


@dataclass(frozen=True)
class RunInfo:
    """The run that produced an artifact (from train.yaml's ``job:`` section on the node)."""

    stage: str = "unknown"
    config_hash: str = ""
    job_id: str = ""
    experiment: str = ""
    git_rev: str = "unknown"
    config_name: str = ""
    created_at: str = ""
    host: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunInfo:
        """Accept a ``job:`` section (``id`` means ``job_id``) or a stored run; unknown keys are dropped."""
        data = dict(data or {})
        if "job_id" not in data and "id" in data:
            data["job_id"] = data["id"]
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in known and v is not None})

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> str:
        """Dict-style access (``art.run["stage"]``) for callers that treat run as a mapping."""
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass(frozen=True)
class Artifact:
    """One published version. ``aliases`` are those pointing at this version when it was read."""

    name: str
    version: int
    kind: str
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    digest: str | None = None
    run: RunInfo = field(default_factory=RunInfo)
    inputs: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    input_slots: dict[str, str] = field(default_factory=dict)
    """slot -> ``name:vN`` when the producer said which input fed which slot (node publishes do)."""

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    @property
    def ref(self) -> str:
        """The exact, immutable reference ``name:vN``."""
        return f"{self.name}:v{self.version}"

    @property
    def created_at(self) -> str:
        return self.run.created_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``from_dict(to_dict())`` round-trips."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "path": self.path,
            "metadata": self.metadata,
            "digest": self.digest,
            "run": self.run.to_dict(),
            "inputs": list(self.inputs),
            "input_slots": dict(self.input_slots),
            "aliases": list(self.aliases),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], aliases: list[str] | None = None) -> Artifact:
        return cls(
            name=data["name"],
            version=int(data["version"]),
            kind=data["kind"],
            path=data["path"],
            metadata=dict(data.get("metadata") or {}),
            digest=data.get("digest"),
            run=RunInfo.from_dict(data.get("run")),
            inputs=list(data.get("inputs") or []),
            aliases=sorted(aliases if aliases is not None else data.get("aliases") or []),
            input_slots=dict(data.get("input_slots") or {}),
        )
