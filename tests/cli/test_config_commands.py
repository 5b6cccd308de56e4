"""``nemotron super3 config ls|show|validate|cp`` and the config merge order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nemotron.config.loader import load_stage_config
from nemotron.pipeline.stages import STAGES, get_stage
from tests.cli.conftest import run_cli


def test_every_stage_default_and_named_config_validates() -> None:
    from nemotron.config.loader import available_configs

    for stage in STAGES:
        names = available_configs(stage)
        assert "default" in names, stage.name
        for name in names:
            resolved = load_stage_config(stage, name)
            assert resolved.data["output"]["name"], (stage.name, name)


def test_every_stage_has_a_tiny_config_in_the_tiny_pipe() -> None:
    pipe = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/super3/pipe/tiny.yaml").read_text())
    for entry in pipe["stages"]:
        name = entry["stage"] if isinstance(entry, dict) else entry
        resolved = load_stage_config(get_stage(name), "tiny")
        assert resolved.data["backend"] == "tiny" or name.startswith("data_prep"), name
        assert resolved.data["output"]["name"].startswith("tiny-"), name


def test_merge_order_cli_beats_profile_beats_named_beats_default() -> None:
    stage = get_stage("pretrain")
    resolved = load_stage_config(
        stage,
        "phase2",
        profile_overrides={"train.train_iters": 7, "train.eval_iters": 3},
        profile_name="p",
        cli_overrides={"train.train_iters": 9},
    )
    data = resolved.data
    assert data["train"]["train_iters"] == 9  # cli over profile over phase2 (20000) over default
    assert data["train"]["eval_iters"] == 3  # profile over default
    assert data["phase"] == "phase2"  # named over default
    assert data["train"]["global_batch_size"] == 3072  # default
    sources = {key: source for key, _, _, source in resolved.diff()}
    assert sources["train.train_iters"] == "cli"
    assert sources["train.eval_iters"] == "profile:p"
    assert sources["phase"] == "config:phase2"


def test_config_hash_ignores_resources_but_not_hyperparameters() -> None:
    stage = get_stage("pretrain")
    base = load_stage_config(stage).config_hash
    assert load_stage_config(stage, cli_overrides={"resources.time": "01:00:00"}).config_hash == base
    assert load_stage_config(stage, cli_overrides={"optimizer.lr": 1e-4}).config_hash != base


def test_config_ls_lists_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["super3", "config", "ls"], capsys)
    assert code == 0
    for stage in STAGES:
        assert stage.name in out


def test_config_show_prints_resolved_yaml_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["super3", "config", "show", "sft", "-c", "lora", "peft.lora.rank=8"], capsys)
    assert code == 0
    body = yaml.safe_load(out.split("\n", 1)[1])
    assert body["peft"] == {"method": "lora", "lora": {**body["peft"]["lora"], "rank": 8}}
    assert body["recipe"] == "nemotron_3_super_peft_config"


def test_config_validate_ok_and_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["super3", "config", "validate", "rl.rlvr"], capsys)
    assert code == 0 and out.startswith("ok: rl.rlvr")
    code, _, err = run_cli(["super3", "config", "validate", "quantize", "quant.configs=[int4_awq]"], capsys)
    assert code == 2 and "quant.configs" in err


def test_config_cp_then_use_the_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "mine.yaml"
    code, _, _ = run_cli(["super3", "config", "cp", "pretrain", str(dest), "-c", "tiny"], capsys)
    assert code == 0 and dest.is_file()
    code, _, err = run_cli(["super3", "config", "cp", "pretrain", str(dest)], capsys)
    assert code == 2 and "already exists" in err
    copied = yaml.safe_load(dest.read_text())
    copied["train"]["train_iters"] = 11
    dest.write_text(yaml.safe_dump(copied))
    code, out, _ = run_cli(["super3", "config", "show", "pretrain", "-c", str(dest)], capsys)
    assert code == 0 and "train_iters: 11" in out


def test_malformed_yaml_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  train_iters: [1,\n")
    code, _, err = run_cli(["super3", "config", "validate", "pretrain", "-c", str(bad)], capsys)
    assert code == 2 and "bad.yaml" in err and len(err.strip().splitlines()) == 1
