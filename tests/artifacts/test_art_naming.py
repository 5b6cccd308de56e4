"""One naming scheme for producers and consumers, checked against the stage registry and the configs."""

from __future__ import annotations

from pathlib import Path

import yaml

from nemotron.artifacts.naming import (
    STAGE_TAGS,
    check_configs,
    output_name,
    parse_name,
    producing_stages,
    scan_configs,
)
from nemotron.paths import CONFIGS_DIR
from nemotron.pipeline.stages import ARTIFACT_KINDS, BY_NAME, STAGES


def test_every_stage_input_kind_is_some_stage_output_kind():
    for stage in STAGES:
        for port in stage.inputs:
            assert port.kind in ARTIFACT_KINDS, f"{stage.name}.{port.slot} wants {port.kind}, nobody makes it"


def test_scheme_covers_every_stage_and_round_trips():
    assert set(STAGE_TAGS) == set(BY_NAME)
    for stage in STAGES:
        for variant in (None, "tiny"):
            for qualifier in (None, "phase1", "fp8"):
                name = output_name(stage.name, variant, qualifier)
                readings = parse_name(name)
                assert [(r.stage, r.variant, r.qualifier) for r in readings] == [(stage.name, variant, qualifier)], name
    assert output_name("sft") == "sft-model" and output_name("data_prep.sft", "tiny") == "tiny-sft-data"
    assert output_name("quantize", qualifier="fp8") == "quantized-fp8-model"
    assert output_name("rl.rlhf", "tiny") == "tiny-rl-rlhf-model"
    assert [(r.stage, r.qualifier) for r in parse_name("quantized-model-fp8-aggressive")] == [
        ("quantize", "fp8-aggressive")
    ]
    assert [(r.stage, r.qualifier) for r in parse_name("pretrain-long-context-model")] == [("pretrain", "long-context")]
    assert parse_name("sft-checkpoint") == [] and parse_name("rlvr-model") == []


def test_real_configs_consumers_match_producers():
    """Every run.<slot> in configs/ names an artifact some stage config publishes, with the right kind."""
    configs = scan_configs(CONFIGS_DIR)
    assert configs, f"no stage configs under {CONFIGS_DIR}"
    problems = check_configs(CONFIGS_DIR)
    assert problems == [], "\n".join(problems)


def _write(root: Path, stage_dir: str, name: str, data: dict) -> None:
    path = root / "super3" / stage_dir / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))


def test_check_configs_catches_mismatches(tmp_path):
    _write(tmp_path, "data_prep/sft", "default", {"output": {"name": "sft-data"}})
    _write(tmp_path, "data_prep/sft", "tiny", {"output": {"name": "tiny-sft-data"}})
    _write(
        tmp_path, "pretrain", "default", {"run": {"data": "pretrain-data:latest"}, "output": {"name": "pretrain-model"}}
    )
    _write(
        tmp_path,
        "sft",
        "default",
        {"run": {"model": "pretrain-model:latest", "data": "sft-data-packed:latest"}, "output": {"name": "sft-model"}},
    )
    _write(tmp_path, "sft", "tiny", {"run": {"data": "sft-data:latest"}, "output": {"name": "tiny-sft-model"}})
    _write(
        tmp_path,
        "rl/rlvr",
        "default",
        {"run": {"model": "sft-data", "data": "rl-data", "extra": "x"}, "output": {"name": "sft-model"}},
    )
    problems = check_configs(tmp_path)
    text = "\n".join(problems)
    assert "pretrain/default.yaml: run.data asks for 'pretrain-data', which no stage config publishes" in text
    assert "sft/default.yaml: run.data asks for 'sft-data-packed'" in text
    assert "sft/tiny.yaml: variant 'tiny' consumes 'sft-data' of variant 'full'" in text
    assert "sft/tiny.yaml: run.model asks for 'pretrain-model'" not in text  # published by pretrain default
    assert "rl/rlvr/default.yaml: output.name 'sft-model' does not follow the scheme for stage rl.rlvr" in text
    assert "rl/rlvr/default.yaml: run.model expects kind model but 'sft-data' is sft-data" in text
    assert "rl/rlvr/default.yaml: run.extra is not an input of stage rl.rlvr" in text
    # and a consistent tree passes
    good = tmp_path / "good"
    _write(good, "data_prep/pretrain", "default", {"output": {"name": "pretrain-data"}})
    _write(
        good,
        "pretrain",
        "default",
        {"run": {"data": "pretrain-data:latest", "model": None}, "output": {"name": "pretrain-model"}},
    )
    _write(
        good,
        "pretrain",
        "phase2",
        {"run": {"model": "pretrain-phase1-model:latest"}, "output": {"name": "pretrain-model"}},
    )
    _write(good, "pretrain", "phase1", {"output": {"name": "pretrain-phase1-model"}})
    assert check_configs(good) == []
    assert producing_stages("pretrain-phase1-model", good) == ["pretrain"]


def test_producing_stages_prefers_configs_then_scheme(tmp_path):
    _write(tmp_path, "sft", "default", {"output": {"name": "chat-model"}})
    assert producing_stages("chat-model", tmp_path) == ["sft"]
    assert producing_stages("tiny-rl-data", tmp_path) == ["data_prep.rl"]
    assert producing_stages("rl-swe2-model", tmp_path) == ["rl.swe2"]
    assert producing_stages("eval-results", tmp_path) == ["eval"]
    assert producing_stages("whatever", tmp_path) == []
