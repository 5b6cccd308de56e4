"""Damaged registry/job files, unusable paths and odd -c files: one line, exit 2, no traceback, no temp files.

Also ``nemotron artifacts fsck [--repair]`` (rebuilds an index from the version records), the
[wandb] typo check and the absurd-plan warning.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from nemotron.artifacts.registry import Registry
from nemotron.config.loader import load_stage_config
from nemotron.pipeline.stages import get_stage
from tests.cli.conftest import run_cli


def one_line_exit_2(code: int, out: str, err: str, *needles: str) -> str:
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out + err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def published(home: Path) -> Registry:
    registry = Registry(home / "artifacts")
    for i in (1, 2):
        data = home.parent / f"data{i}"
        data.mkdir()
        (data / "train.jsonl").write_text(f"rows {i}\n")
        registry.publish("tiny-rl-data", "rl-data", data, run={"stage": "data_prep.rl", "id": f"job-{i}"})
    return registry


@pytest.mark.parametrize(
    "command", [["artifacts", "ls"], ["artifacts", "show", "tiny-rl-data"], ["lineage", "tiny-rl-data"]]
)
@pytest.mark.parametrize("damage", ["index", "version", "binary"])
def test_damaged_registry_files_are_one_line(published: Registry, capsys, command, damage) -> None:
    where = published.root / "tiny-rl-data"
    target = where / ("index.json" if damage == "index" else "v2.json")
    target.write_bytes(b"\xff\xfe\x00garbage" if damage == "binary" else b'{"name": "tiny-rl-data", ')
    one_line_exit_2(*run_cli(command, capsys), f"registry file {target} is damaged", "artifacts fsck")


def test_fsck_repair_rebuilds_a_damaged_index_and_removes_temp_files(published: Registry, capsys) -> None:
    index = published.root / "tiny-rl-data" / "index.json"
    index.write_text("{not json")
    tmp = published.root / "tiny-rl-data" / ".index.json.123.abc.tmp"
    tmp.write_text("half")
    line = one_line_exit_2(*run_cli(["artifacts", "fsck"], capsys), "2 problem(s)", "fsck --repair")
    assert "problem" in line
    code, out, err = run_cli(["artifacts", "fsck", "--repair"], capsys)
    assert code == 0, err
    assert f"rebuilt {index}" in out and f"removed {tmp}" in out and out.strip().endswith("ok")
    assert json.loads(index.read_text())["versions"] == [1, 2] and not tmp.exists()
    assert published.get("tiny-rl-data").ref == "tiny-rl-data:v2"


def test_fsck_reports_a_damaged_version_record_it_cannot_rebuild(published: Registry, capsys) -> None:
    (published.root / "tiny-rl-data" / "v1.json").write_text("[]")
    one_line_exit_2(*run_cli(["artifacts", "fsck", "--repair"], capsys), "problems left", "v1.json")


def test_status_of_a_damaged_experiment_record_is_one_line(home: Path, capsys) -> None:
    from nemotron.execution.records import RECORD_FILE, experiment_dir

    record = experiment_dir("exp-broken") / RECORD_FILE
    record.parent.mkdir(parents=True)
    record.write_text('{"experiment_id": ')
    one_line_exit_2(*run_cli(["status", "exp-broken"], capsys), f"experiment record {record} is damaged")
    code, out, err = run_cli(["status"], capsys)  # the listing skips it
    assert code == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "cfgdir/", "is a directory"),
        (lambda d: Path("/dev/null"), "/dev/null is not a regular file"),
        (lambda d: (d / "empty.yaml", (d / "empty.yaml").write_text("  \n"))[0], "is empty"),
        (lambda d: (d / "bin.yaml", (d / "bin.yaml").write_bytes(os.urandom(64) + b"\xff"))[0], "binary"),
    ],
    ids=["directory", "dev-null", "empty", "binary"],
)
def test_odd_config_files_are_named_for_what_they_are(home: Path, capsys, make, needle) -> None:
    (home.parent / "cfgdir").mkdir()
    path = make(home.parent)
    one_line_exit_2(*run_cli(["super3", "pretrain", "-d", "-c", str(path)], capsys), needle)


def test_wandb_typo_is_an_error_not_silently_off(home: Path, capsys, monkeypatch) -> None:
    env = home.parent / "typo.toml"
    env.write_text('[wandb]\nprojet = "p"\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env))
    one_line_exit_2(*run_cli(["super3", "pretrain", "-d"], capsys), "[wandb] has unknown key 'projet'", "project?")


def test_absurd_train_iters_warns(home: Path, capsys) -> None:
    code, out, err = run_cli(["super3", "pretrain", "-d", "train.train_iters=" + "1" + "0" * 29], capsys)
    assert code == 0, err
    resources = load_stage_config(get_stage("pretrain"), None).data["resources"]
    gpus = resources["nodes"] * resources["gpus_per_node"]
    assert "warning: train.train_iters=" in err and "GPU-hours" in err and f"years on {gpus} GPUs" in err
    code, out, err = run_cli(["super3", "pretrain", "-d"], capsys)
    assert "warning: train.train_iters" not in err  # the published defaults are not absurd


def test_a_parent_path_that_is_a_file_is_one_line(home: Path, capsys, monkeypatch) -> None:
    blocker = home.parent / "blocker"
    blocker.write_text("x")
    monkeypatch.setenv("NEMOTRON_HOME", str(blocker / "home"))
    one_line_exit_2(*run_cli(["super3", "data", "prep", "rl", "-c", "tiny", "-d"], capsys), "cannot write", "is a file")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_registry_leaves_no_temp_files(tmp_path: Path, monkeypatch, code) -> None:
    from nemotron.artifacts import fsio
    from nemotron.errors import from_os_error

    data = tmp_path / "data"
    data.mkdir()
    (data / "x").write_text("x")
    registry = Registry(tmp_path / "registry")
    registry.publish("a", "rl-data", data)

    def fail(fd):
        raise OSError(code, os.strerror(code), "registry")

    monkeypatch.setattr(fsio.os, "fsync", fail)
    with pytest.raises(OSError) as exc:
        registry.publish("a", "rl-data", data)
    assert from_os_error(exc.value).one_line().startswith("cannot write registry: ")
    assert list(registry.root.rglob("*.tmp")) == []
    assert [a.version for a in registry.versions("a")] == [1]
