"""Node preflight (nemotron.node.preflight): one table, and one line with exit 2 on the first failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nemotron.errors import UserError
from nemotron.node import preflight
from nemotron.node.preflight import Check
from nemotron.upstream import pins

from .recipes_support import resolved_config

CUSTOM = "example.com/custom:1"  # an image without pins: versions are not checked, the rest is


def _train_yaml(tmp_path: Path, stage: str = "pretrain", config: str = "default", **res) -> Path:
    cfg = resolved_config(stage, config, tmp_path)
    cfg["resources"].update(res)
    cfg["run"] = {}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mcore_only(monkeypatch: pytest.MonkeyPatch) -> str:
    """pretrain checks only megatron-core (installed here); returns its installed version."""
    from importlib.metadata import version

    monkeypatch.setitem(preflight.STAGE_LIBRARIES, "pretrain", (("megatron-core", "megatron.core"),))
    monkeypatch.setattr(preflight, "stage_hook", lambda stage: None)
    return version("megatron-core")


def _pin(monkeypatch: pytest.MonkeyPatch, image: str, mcore: str) -> None:
    pin = pins.Pin("megatron-core", mcore, "megatron.core", "NVIDIA/Megatron-LM", f"core_v{mcore}")
    monkeypatch.setitem(pins.CONTAINERS, image, pins.Container(image, (pin,), "test"))


def test_missing_library_is_one_line_exit_2(tmp_path: Path) -> None:
    """megatron.bridge is not installed in the CPU environment: the first failure, as one line."""
    config = _train_yaml(tmp_path, gpus_per_node=0, container=CUSTOM)
    done = subprocess.run(
        [sys.executable, "-m", "nemotron.node.preflight", "--stage", "pretrain", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    # (megatron-core's import warnings may come first; ours is one line, the last)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [done.stderr.splitlines()[-1]] and "Traceback" not in done.stderr
    assert errors[0].startswith("error: preflight pretrain: library megatron-bridge: import megatron.bridge failed")
    table = done.stdout
    assert "preflight pretrain on" in table and "FAIL  library megatron-bridge" in table
    assert f"not checked: no pinned versions for container '{CUSTOM}' in nemotron.upstream.pins" in table
    assert "ok    output dir" in table and "ok    artifact registry" in table


def test_version_against_the_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = _mcore_only(monkeypatch)
    _pin(monkeypatch, "img:ok", installed)
    checks = preflight.library_checks("pretrain", "img:ok")
    assert checks == [
        Check("library megatron-core", True, f"{installed} (pinned, NVIDIA/Megatron-LM core_v{installed})")
    ]
    _pin(monkeypatch, "img:old", "0.1.0")
    (check,) = preflight.library_checks("pretrain", "img:old")
    assert not check.ok and f"{installed} here, but the config was checked against 0.1.0" in check.detail
    assert "use the container img:old or update nemotron.upstream.pins" in check.detail


def test_gpus_output_dir_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _mcore_only(monkeypatch)
    config = _train_yaml(tmp_path, gpus_per_node=8)
    monkeypatch.setattr(preflight, "visible_gpus", lambda: (0, "nvidia-smi -L"))
    report = tmp_path / "report.json"
    assert preflight.main(["--config", str(config), "--report", str(report), "--doctor"]) == 0
    rows = {row["name"]: row for row in json.loads(report.read_text())["checks"]}
    assert rows["gpus"] == {"name": "gpus", "ok": False, "detail": rows["gpus"]["detail"]}
    assert rows["gpus"]["detail"].startswith("0 visible (nvidia-smi -L), 8 requested per node")
    assert rows["output dir"]["ok"] and "inputs" not in rows  # --doctor: no run inputs
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    check = preflight.writable_check("output dir", blocker / "out")
    assert not check.ok and "is not writable from" in check.detail


def test_first_failure_decides_the_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _mcore_only(monkeypatch)
    config = _train_yaml(tmp_path, gpus_per_node=0, container=CUSTOM)
    assert preflight.main(["--config", str(config)]) == 0
    monkeypatch.setattr(preflight, "visible_gpus", lambda: (2, "torch.cuda.device_count()"))
    config = _train_yaml(tmp_path, gpus_per_node=8, container=CUSTOM)
    capsys.readouterr()
    assert preflight.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: preflight pretrain: gpus: 2 visible (torch.cuda.device_count()), 8 requested per node; "
        "check the profile's GPU request (gres) and that the container sees the devices\n"
    )


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (lambda cfg: None, [Check("pretrain preflight", True, "passed")]),
        (lambda cfg: [Check("checkpoint format", False, "HF only")], [Check("checkpoint format", False, "HF only")]),
        (
            lambda cfg: (_ for _ in ()).throw(UserError("wrong tokenizer", hint="use the data's")),
            [Check("pretrain preflight", False, "wrong tokenizer — use the data's")],
        ),
    ],
    ids=["none-passes", "checks", "user-error"],
)
def test_stage_hook_results(monkeypatch: pytest.MonkeyPatch, hook, expected) -> None:
    monkeypatch.setattr(preflight, "stage_hook", lambda stage: hook)
    result = preflight.hook_checks("pretrain", {})
    assert [(c.name, c.ok) for c in result] == [(c.name, c.ok) for c in expected]
    assert result[0].detail.startswith(expected[0].detail.split(" — ")[0])


def test_stage_hook_is_found_in_the_megatron_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from super3.megatron import pretrain

    monkeypatch.setattr(pretrain, "preflight", lambda cfg: [Check("x", True, "y")], raising=False)
    assert preflight.hook_checks("pretrain", {}) == [Check("x", True, "y")]
    monkeypatch.delattr(pretrain, "preflight")
    assert preflight.hook_checks("pretrain", {}) == []
