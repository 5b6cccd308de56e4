"""A first submission says where the artifact registry is; later ones stay quiet."""

from __future__ import annotations

from pathlib import Path

from nemotron.launch.stage import registry_notice


def test_notice_only_while_the_registry_does_not_exist(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    line = registry_notice(root)
    assert line is not None and str(root) in line and "[artifacts] root" in line and line.endswith("\n")
    root.mkdir()
    assert registry_notice(root) is None
