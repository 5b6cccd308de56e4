"""``nemotron artifacts fsck [--repair]``: find what a crash, a full disk or a stray edit did to a registry.

Version records (``v<N>.json``) are the truth and are never rewritten: a damaged one is reported
(restore it from a backup; nothing here can know what it said). Everything else is derived from
them and can be rebuilt: ``index.json`` (versions and kind from the records; aliases kept from the
old index where it is readable and they point at existing versions, else ``latest`` on the newest),
path claims (``_paths/``, see ``Registry.owner_of``) and leftover temp files of killed writers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.errors import UserError


@dataclass(frozen=True)
class Problem:
    path: Path
    what: str
    repairable: bool


def _records(registry: Any, name: str) -> tuple[list[Any], list[Problem]]:
    arts, problems = [], []
    for version in registry._scan_versions(name):
        try:
            arts.append(registry._load(name, version, {}))
        except UserError as err:
            problems.append(Problem(registry._version_file(name, version), err.message, False))
    return arts, problems


def _index_problem(registry: Any, name: str, arts: list[Any]) -> Problem | None:
    path = registry._index_file(name)
    try:
        index = registry._read_index(name)
    except UserError as err:
        return Problem(path, err.message, True)
    if not path.exists():
        return Problem(path, "missing", True) if arts else None
    versions = sorted(a.version for a in arts)
    if sorted(index.get("versions", [])) != versions:
        return Problem(path, f"lists versions {index.get('versions')}, the records are {versions}", True)
    dangling = {k: v for k, v in index.get("aliases", {}).items() if v not in versions}
    if dangling:
        return Problem(path, f"aliases point at missing versions: {dangling}", True)
    return None


def check(registry: Any) -> list[Problem]:
    """Every problem in the registry, without changing anything."""
    root = registry.root
    if not root.is_dir():
        return []
    problems: list[Problem] = []
    claimed: set[str] = set()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "_")) or not entry.is_dir():
            continue
        arts, bad = _records(registry, entry.name)
        problems += bad
        index = _index_problem(registry, entry.name, arts)
        if index is not None:
            problems.append(index)
        for art in arts:
            if art.path in claimed:
                continue
            claimed.add(art.path)
            if art.digest and "://" not in art.path and registry.owner_of(art.path) is None:
                problems.append(Problem(Path(art.path), f"{art.ref}: no path claim (published before claims)", True))
    for tmp in sorted(root.rglob(".*.tmp")):
        problems.append(Problem(tmp, "temp file of an interrupted write", True))
    return problems


def repair(registry: Any) -> list[str]:
    """Rebuild what ``check`` calls repairable; returns what was done, one line each."""
    from nemotron.artifacts.fsio import create_json_exclusive, file_lock, read_json, write_json_atomic

    done: list[str] = []
    for problem in check(registry):
        if not problem.repairable:
            continue
        if problem.path.name.endswith(".tmp"):
            problem.path.unlink(missing_ok=True)
            done.append(f"removed {problem.path}")
        elif problem.path.name == "index.json":
            name = problem.path.parent.name
            with file_lock(problem.path.parent / ".lock"):
                arts, _ = _records(registry, name)
                versions = sorted(a.version for a in arts)
                try:
                    old = read_json(problem.path).get("aliases", {})
                except (OSError, ValueError, AttributeError):
                    old = {}
                aliases = {k: v for k, v in (old if isinstance(old, dict) else {}).items() if v in versions}
                if versions and "latest" not in aliases:
                    aliases["latest"] = versions[-1]
                kind = arts[-1].kind if arts else None
                index = {"name": name, "kind": kind, "versions": versions, "aliases": aliases}
                write_json_atomic(problem.path, index)
            done.append(f"rebuilt {problem.path} ({len(versions)} versions, aliases {sorted(aliases)})")
        else:  # a missing path claim: the oldest version published from that path owns it
            key = str(problem.path)
            for art in registry.list():
                if art.path == key:
                    claim = {"name": art.name, "version": art.version, "path": key}
                    create_json_exclusive(registry._claim_file(key), claim)
                    done.append(f"claimed {key} for {art.ref}")
                    break
    return done


def describe(problem: Problem) -> str:
    fix = "repairable" if problem.repairable else "restore from a backup"
    what = problem.what.replace(f"registry file {problem.path} is ", "")
    return f"{problem.path}: {what} ({fix})"
