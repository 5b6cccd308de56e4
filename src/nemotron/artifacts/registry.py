"""The local artifact registry: the lineage record that works with or without W&B.

Layout under the root (a plain directory, fine on a shared filesystem)::

    REGISTRY.json              format marker
    <name>/.lock               per-name lock (fcntl.lockf)
    <name>/v<N>.json           one immutable file per version (created once via os.link)
    <name>/index.json          kind, versions, aliases -> version (replaced atomically)
    <name>/v<N>.wandb.json     W&B mirror state of that version (see wandb_mirror)
    _paths/<sha256(path)>.json the first version published from a data path (its owner)

Versions are the truth: ``v<N>.json`` files are never rewritten, so a crash can at worst leave a
version whose aliases were not moved yet (the next publish repairs the index from the files).
A published data directory is immutable: the first version published from a path claims it
(``_paths/``, created once via ``os.link``), and a later publish from the same path is refused
unless the content is still exactly what the owner recorded (an identical re-publish).
Publishing takes the per-name lock, so 8 writers on 8 hosts never hand out one version twice; the
``os.link`` claim makes a duplicate impossible even if a lock were lost.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nemotron.artifacts.fsio import create_json_exclusive, file_lock, read_json, write_json_atomic
from nemotron.artifacts.model import (
    DEFAULT_ALIAS,
    VERSION_RE,
    Artifact,
    RunInfo,
    parse_ref,
    validate_alias,
    validate_kind,
    validate_name,
)
from nemotron.errors import UserError

FORMAT = 1


def default_root() -> Path:
    """``$NEMOTRON_ARTIFACTS_ROOT``, else env.toml's ``[artifacts] root``, else ``<NEMOTRON_HOME>/artifacts``
    (the rule itself is ``EnvFile.artifacts_root``)."""
    from nemotron.env.profiles import load_env

    return load_env().artifacts_root


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Registry:
    """A local, filesystem-backed artifact registry rooted at ``root``."""

    def __init__(self, root: Path | str | None = None, mirror: Any = None) -> None:
        """``mirror`` (optional) gets ``mirror.publish(artifact, inputs)`` after each local publish."""
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.mirror = mirror

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- paths --------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def _version_file(self, name: str, version: int) -> Path:
        return self._dir(name) / f"v{version}.json"

    def _index_file(self, name: str) -> Path:
        return self._dir(name) / "index.json"

    def _claim_file(self, path: str) -> Path:
        import hashlib

        return self.root / "_paths" / f"{hashlib.sha256(path.encode()).hexdigest()[:32]}.json"

    def _ensure_root(self) -> None:
        marker = self.root / "REGISTRY.json"
        if not marker.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            create_json_exclusive(marker, {"format": FORMAT, "kind": "nemotron-artifact-registry"})

    # -- reading ------------------------------------------------------------------------------
    def _scan_versions(self, name: str) -> list[int]:
        directory = self._dir(name)
        if not directory.is_dir():
            return []
        versions = []
        for entry in os.listdir(directory):
            stem, dot, ext = entry.partition(".")
            match = VERSION_RE.match(stem)
            if match and ext == "json":
                versions.append(int(match.group(1)))
        return sorted(versions)

    def _read_index(self, name: str) -> dict[str, Any]:
        try:
            index = read_record(self._index_file(name))
        except FileNotFoundError:
            return {"name": name, "kind": None, "versions": [], "aliases": {}}
        if not isinstance(index, dict) or not isinstance(index.get("aliases", {}), dict):
            raise damaged(self._index_file(name), "not an index object")
        return index

    def names(self) -> list[str]:
        """Every artifact name with at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith((".", "_")) and self._scan_versions(entry.name)
        )

    def _load(self, name: str, version: int, aliases_index: dict[str, int] | None = None) -> Artifact:
        path = self._version_file(name, version)
        data = read_record(path)
        if not isinstance(data, dict) or data.get("name") != name or data.get("version") != version:
            raise damaged(path, "not the record of this version")
        if aliases_index is None:
            aliases_index = self._read_index(name).get("aliases", {})
        aliases = [alias for alias, ver in aliases_index.items() if ver == version]
        try:
            return Artifact.from_dict(data, aliases=aliases)
        except (KeyError, TypeError, ValueError) as exc:
            raise damaged(path, f"missing or bad field {exc}") from None

    def versions(self, name: str) -> list[Artifact]:
        """All versions of ``name``, oldest first."""
        aliases = self._read_index(name).get("aliases", {})
        return [self._load(name, v, aliases) for v in self._scan_versions(name)]

    def get(self, ref: str) -> Artifact:
        """Resolve ``NAME``, ``NAME:latest``, ``NAME:vN`` or ``NAME:ALIAS`` to one exact version.

        Raises ``UserError`` naming the stage that produces the artifact when it does not exist.
        """
        parsed = parse_ref(ref)
        versions = self._scan_versions(parsed.name)
        if not versions:
            from nemotron.artifacts.naming import describe_producer

            raise UserError(
                f"artifact '{parsed.name}' not found in the registry {self.root}",
                hint=describe_producer(parsed.name),
            )
        if parsed.version is not None:
            if parsed.version not in versions:
                raise UserError(
                    f"artifact '{parsed.name}' has no version v{parsed.version}",
                    hint=f"it has v{versions[0]}..v{versions[-1]}",
                )
            return self._load(parsed.name, parsed.version)
        index = self._read_index(parsed.name)
        aliases = index.get("aliases", {})
        alias = parsed.alias or DEFAULT_ALIAS
        if alias in aliases and aliases[alias] in versions:
            return self._load(parsed.name, aliases[alias], aliases)
        if alias == DEFAULT_ALIAS and DEFAULT_ALIAS not in aliases:
            return self._load(parsed.name, versions[-1], aliases)  # never aliased: newest is latest
        known = ", ".join(sorted(aliases)) or "none"
        raise UserError(
            f"artifact '{parsed.name}' has no alias '{alias}'",
            hint=f"aliases: {known}; versions v{versions[0]}..v{versions[-1]}",
        )

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
        except UserError:
            return False
        return True

    def list(self, kind: str | None = None, all_versions: bool = True) -> list[Artifact]:
        """Artifacts sorted by name then version; only the newest per name with ``all_versions=False``."""
        out: list[Artifact] = []
        for name in self.names():
            index = self._read_index(name)
            if kind is not None and index.get("kind") not in (None, kind):
                continue
            items = self.versions(name)
            if not all_versions:
                items = items[-1:]
            out.extend(a for a in items if kind is None or a.kind == kind)
        return out

    def find(
        self,
        name: str,
        config_hash: str | None = None,
        *,
        stage: str | None = None,
        require_path: bool = True,
        verify_digest: bool = False,
    ) -> Artifact | None:
        """The newest version of ``name`` made by a run matching ``config_hash``/``stage``, or None.

        This answers "was this exact resolved config already run?" (``pipe`` skips such stages).
        ``require_path`` ignores versions whose data is gone; ``verify_digest`` also re-digests it.
        """
        from nemotron.artifacts.digest import digest_matches

        for art in reversed(self.versions(name)):
            if config_hash is not None and art.run.config_hash != config_hash:
                continue
            if stage is not None and art.run.stage != stage:
                continue
            if require_path and not _is_uri(art.path) and not Path(art.path).exists():
                continue
            if verify_digest and not digest_matches(art.path, art.digest):
                continue
            return art
        return None

    def owner_of(self, path: Path | str) -> Artifact | None:
        """The version that first published the data at ``path`` (resolved), or None."""
        key = str(Path(path).expanduser().resolve())
        try:
            claim = read_json(self._claim_file(key))
            return self._load(claim["name"], int(claim["version"]), {})  # aliases not needed (nor the index)
        except (FileNotFoundError, KeyError, TypeError, ValueError):
            return None

    def verify(self, artifact: Artifact, what: str | None = None) -> None:
        """Raise a one-line ``UserError`` when ``artifact``'s data is gone or no longer matches its digest."""
        from nemotron.artifacts.digest import compute_digest, digest_matches

        label = what or artifact.ref
        if _is_uri(artifact.path):
            return
        if not Path(artifact.path).exists():
            raise UserError(
                f"{label}: its data at {artifact.path} is gone",
                hint=f"re-run the stage that made it ({artifact.run.stage or 'see nemotron artifacts show'})",
            )
        if not digest_matches(artifact.path, artifact.digest):
            now = compute_digest(artifact.path)
            raise UserError(
                f"{label}: the data at {artifact.path} changed since it was published "
                f"(digest {artifact.digest[:20]}…, now {now[:20]}…)",
                hint="published data is immutable: restore it, or re-run the stage that made it to publish a new version",
            )

    def consumers(self, ref: str) -> list[Artifact]:
        """Artifacts that list ``ref`` (resolved to ``name:vN``) among their inputs."""
        exact = self.get(ref).ref
        return [a for a in self.list() if exact in a.inputs]

    def mirror_state(self, artifact: Artifact) -> dict[str, Any] | None:
        """The W&B mirror record of one version, if any."""
        path = self._dir(artifact.name) / f"v{artifact.version}.wandb.json"
        try:
            return read_record(path)
        except FileNotFoundError:
            return None

    def write_mirror_state(self, artifact: Artifact, state: dict[str, Any]) -> None:
        write_json_atomic(self._dir(artifact.name) / f"v{artifact.version}.wandb.json", state)

    # -- writing ------------------------------------------------------------------------------
    def _resolve_inputs(self, inputs: Iterable[Artifact | str] | Mapping[str, Artifact | str] | None):
        slots: dict[str, str] = {}
        refs: list[Artifact] = []
        items = list(inputs.items()) if isinstance(inputs, Mapping) else [(None, i) for i in inputs or []]
        for slot, item in items:
            if item is None:
                continue
            art = item if isinstance(item, Artifact) else self.get(str(item))
            if not self._version_file(art.name, art.version).exists():
                raise UserError(f"input {art.ref} is not in the registry {self.root}")
            if art.ref not in (a.ref for a in refs):
                refs.append(art)
            if slot is not None:
                slots[str(slot)] = art.ref
        return refs, slots

    def publish(
        self,
        name: str,
        kind: str,
        path: Path | str,
        metadata: dict[str, Any] | None = None,
        inputs: Iterable[Artifact | str] | Mapping[str, Artifact | str] | None = None,
        run: dict[str, Any] | RunInfo | None = None,
        aliases: Iterable[str] = (DEFAULT_ALIAS,),
        digest: str | None = None,
    ) -> Artifact:
        """Record a new version of ``name`` pointing at ``path`` (referenced, never copied).

        ``digest`` is computed from the data unless given (``artifacts add`` passes a stat-based
        reference digest, see ``digest.compute_reference_digest``).

        ``inputs`` are artifacts or refs (aliases are pinned to exact versions now), or a mapping
        slot -> artifact to also record which slot each fed. ``run`` is the producing run (a
        train.yaml ``job:`` section works as is). Moves ``aliases`` to the new version.
        """
        validate_name(name)
        validate_kind(kind)
        aliases = [validate_alias(a) for a in dict.fromkeys(aliases)]
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except TypeError as exc:
            raise UserError(f"metadata of '{name}' is not JSON-serializable: {exc}") from exc
        path_str = str(path)
        if _is_uri(path_str):
            digest = None
        else:
            local = Path(path_str).expanduser().resolve()
            if not local.exists():
                raise UserError(f"cannot publish '{name}': {local} does not exist")
            path_str = str(local)
            if digest is None:
                from nemotron.artifacts.digest import compute_digest

                digest = compute_digest(local)
        input_arts, slots = self._resolve_inputs(inputs)
        run_info = run if isinstance(run, RunInfo) else RunInfo.from_dict(run)
        run_dict = run_info.to_dict()
        run_dict["created_at"] = run_dict["created_at"] or utc_now()
        run_dict["host"] = run_dict["host"] or socket.gethostname()

        self._ensure_root()
        with file_lock(self._dir(name) / ".lock"):
            index = self._read_index(name)
            if index.get("kind") and index["kind"] != kind:
                raise UserError(
                    f"'{name}' holds artifacts of kind {index['kind']}, not {kind}",
                    hint="publish under another name",
                )
            owner = self._check_path_owner(path_str, digest, name)
            existing = sorted(set(self._scan_versions(name)) | set(index.get("versions", [])))
            version = (existing[-1] if existing else 0) + 1
            while True:
                record = {
                    "format": FORMAT,
                    "name": name,
                    "version": version,
                    "kind": kind,
                    "path": path_str,
                    "metadata": metadata,
                    "digest": digest,
                    "run": run_dict,
                    "inputs": [a.ref for a in input_arts],
                    "input_slots": slots,
                }
                if create_json_exclusive(self._version_file(name, version), record):
                    break
                version += 1  # someone claimed it without our lock (stale NFS view): take the next
            if owner is None and digest is not None:
                # first publish from this path: it owns it (a racing owner under another name wins)
                create_json_exclusive(self._claim_file(path_str), {"name": name, "version": version, "path": path_str})
            alias_map = dict(index.get("aliases", {}))
            for alias in aliases:
                alias_map[alias] = version
            write_json_atomic(
                self._index_file(name),
                {
                    "name": name,
                    "kind": kind,
                    "versions": sorted(set(self._scan_versions(name)) | {version}),
                    "aliases": alias_map,
                },
            )
        artifact = Artifact.from_dict(record, aliases=list(aliases))
        if self.mirror is not None:
            self.mirror.publish(self, artifact, input_arts)
        return artifact

    def _check_path_owner(self, path: str, digest: str | None, name: str) -> Artifact | None:
        """The owner of ``path`` if this publish may share it (same content), else a ``UserError``."""
        if digest is None:
            return None
        owner = self.owner_of(path)
        if owner is None:
            return None
        same_rule = bool(owner.digest) and owner.digest.partition(":")[0] == digest.partition(":")[0]
        if same_rule and owner.digest != digest:
            raise UserError(
                f"cannot publish '{name}' from {path}: that directory holds {owner.ref} "
                f"(job {owner.run.job_id or '?'}) and its content changed since",
                hint="published directories are immutable: write new data to a new output_dir "
                "(leave output_dir unset and each job gets its own)",
            )
        return owner

    def set_alias(self, ref: str, alias: str) -> Artifact:
        """Point ``alias`` of the artifact's name at the version ``ref`` resolves to."""
        validate_alias(alias)
        target = self.get(ref)
        with file_lock(self._dir(target.name) / ".lock"):
            index = self._read_index(target.name)
            index.setdefault("aliases", {})[alias] = target.version
            index["versions"] = self._scan_versions(target.name)
            index["name"], index["kind"] = target.name, target.kind
            write_json_atomic(self._index_file(target.name), index)
        return self.get(f"{target.name}:v{target.version}")

    def remove_alias(self, name: str, alias: str) -> None:
        """Drop ``alias`` from ``name`` (no error if it was not set)."""
        validate_alias(alias)
        with file_lock(self._dir(name) / ".lock"):
            index = self._read_index(name)
            if index.get("aliases", {}).pop(alias, None) is not None:
                write_json_atomic(self._index_file(name), index)


def damaged(path: Path, why: str) -> UserError:
    """The one-line error for a registry file that cannot be read as what it should be."""
    return UserError(
        f"registry file {path} is damaged ({why})",
        hint="run `nemotron artifacts fsck` to see every problem, `--repair` to rebuild indexes from version records",
    )


def read_record(path: Path) -> Any:
    """``read_json`` for registry files: damage (bad JSON, binary junk) is a ``UserError``, not a traceback."""
    try:
        return read_json(path)
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise damaged(path, f"invalid JSON at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, UnicodeDecodeError):
        raise damaged(path, "not UTF-8 JSON text") from None
    except IsADirectoryError:
        raise damaged(path, "a directory") from None


def _is_uri(path: str) -> bool:
    return "://" in path
