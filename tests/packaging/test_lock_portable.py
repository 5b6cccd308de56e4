"""The lock must resolve from the public package registries alone.

A path or file URL in pyproject.toml or uv.lock installs only on the machine that has that path; a fresh
clone anywhere else fails at its first ``uv run``. This test reads both files as TOML and rejects any
source that is not a registry (or a git/URL source of a public host).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _local_sources_in_lock(lock: dict) -> list[str]:
    found = []
    for package in lock.get("package", []):
        source = package.get("source", {})
        # The project itself is the one legitimate local source (editable/virtual root).
        if source.get("editable") == "." or source.get("virtual") == ".":
            continue
        for key in ("path", "directory", "editable", "virtual"):
            if key in source:
                found.append(f"{package['name']} {package.get('version', '')}: {key} = {source[key]}")
        for dep in package.get("dependencies", []) + [
            d for group in package.get("dev-dependencies", {}).values() for d in group
        ]:
            dep_source = dep.get("source", {})
            for key in ("path", "directory"):
                if key in dep_source:
                    found.append(f"{package['name']} -> {dep['name']}: {key} = {dep_source[key]}")
    return found


def test_uv_lock_names_no_local_path():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert _local_sources_in_lock(lock) == []
    assert "file://" not in (ROOT / "uv.lock").read_text()


def test_pyproject_has_no_local_sources():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = project.get("tool", {}).get("uv", {}).get("sources", {})
    local = {name: spec for name, spec in sources.items() if "path" in str(spec) or "file://" in str(spec)}
    assert local == {}


def test_detector_catches_a_local_wheel():
    """The check itself can fail: a lock entry like the old /opt/wheels torch is reported."""
    lock = {
        "package": [
            {"name": "torch", "version": "2.13.0+cpu", "source": {"path": "/opt/wheels/torch.whl"}},
            {"name": "nemotron", "version": "0.1.0", "source": {"editable": "."}},
        ]
    }
    assert _local_sources_in_lock(lock) == ["torch 2.13.0+cpu: path = /opt/wheels/torch.whl"]
