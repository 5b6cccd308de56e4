"""Data-prep schemas and YAML configs: default + tiny validate, key shapes, CLI-style overrides."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from nemotron.config.schemas.data_prep import SCHEMAS, DataPrepPretrainConfig, DataPrepSftConfig
from nemotron.paths import CONFIGS_DIR, REPO_ROOT

BASE = {"output": {"name": "x"}, "data": {"inputs": ["a.jsonl"]}, "tokenizer": {"path": "tok.json"}}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl"])
def test_default_and_tiny_validate(stage: str) -> None:
    folder = CONFIGS_DIR / "super3" / "data_prep" / stage
    default = yaml.safe_load((folder / "default.yaml").read_text())
    tiny = yaml.safe_load((folder / "tiny.yaml").read_text())
    schema = SCHEMAS[f"data_prep.{stage}"]
    full = schema.model_validate(default)
    small = schema.model_validate(_merge(default, tiny))
    assert full.output.name == f"{stage}-data" and small.output.name == f"tiny-{stage}-data"
    assert full.resources.gpus_per_node == 0 and small.resources.gpus_per_node == 0
    for spec in small.data.inputs:  # tiny inputs are shipped in the repository
        assert (REPO_ROOT / spec.path).exists(), spec.path
    if stage != "rl":
        assert (REPO_ROOT / small.tokenizer.path).exists()
    if stage == "sft":
        assert small.pack.size == 256 and full.pack.size == 4096


def test_inputs_forms_and_weights() -> None:
    cfg = DataPrepPretrainConfig.model_validate(BASE | {"data": {"inputs": "one.jsonl"}})
    assert [s.path for s in cfg.data.inputs] == ["one.jsonl"] and cfg.data.inputs[0].weight is None
    weighted = {"inputs": [{"path": "a/*.jsonl", "weight": 2}, {"path": "b.parquet", "weight": 1, "name": "bee"}]}
    cfg = DataPrepPretrainConfig.model_validate(BASE | {"data": weighted})
    assert [s.weight for s in cfg.data.inputs] == [2, 1] and cfg.data.inputs[1].name == "bee"
    with pytest.raises(ValidationError, match="weight for every input or for none"):
        DataPrepPretrainConfig.model_validate(BASE | {"data": {"inputs": [{"path": "a", "weight": 1}, "b"]}})
    with pytest.raises(ValidationError):
        DataPrepPretrainConfig.model_validate(BASE | {"data": {"inputs": []}})
    with pytest.raises(ValidationError):
        DataPrepPretrainConfig.model_validate(BASE | {"data": {"inputs": ["a"], "text_feild": "t"}})
    with pytest.raises(ValidationError, match="leave something for train"):
        DataPrepPretrainConfig.model_validate(
            BASE | {"data": {"inputs": ["a"], "valid_fraction": 0.5, "test_fraction": 0.5}}
        )


def test_chat_template_checks() -> None:
    ok = DataPrepSftConfig.model_validate(BASE)
    assert ok.tokenizer.chat_template == "auto"  # the tokenizer's own template
    assert ok.tokenizer.per_turn.turn == "<|im_start|>{role}\n{content}<|im_end|>\n"  # the explicit fallback
    assert ok.chat.multi_turn_reasoning == "split" and ok.chat.thinking_from_data
    old = DataPrepSftConfig.model_validate(_merge(BASE, {"tokenizer": {"chat_template": {"bos": "<s>"}}}))
    assert old.tokenizer.chat_template == "per_turn" and old.tokenizer.per_turn.bos == "<s>"  # pre-Jinja configs
    kw = DataPrepSftConfig.model_validate(
        _merge(BASE, {"data": {"inputs": [{"path": "a", "chat_template_kwargs": {"enable_thinking": False}}]}})
    )
    assert kw.data.inputs[0].chat_template_kwargs == {"enable_thinking": False}
    bad_turns = [
        {"turn": "{role}: no content"},
        {"turn": "<|im_start|>{role}\n{content}\n<|im_end|>"},  # end_of_turn must follow content
        {"train_roles": ["robot"]},
    ]
    for template in bad_turns:
        with pytest.raises(ValidationError):
            DataPrepSftConfig.model_validate(_merge(BASE, {"tokenizer": {"chat_template": template}}))


def test_cli_style_overrides_through_the_config_loader() -> None:
    """`nemotron super3 data prep pretrain -c tiny "data.inputs=[a.jsonl]" tokenizer.path=tok.json output_dir=out`."""
    from nemotron.config import loader, overrides
    from nemotron.pipeline.stages import get_stage

    parsed = overrides.parse_overrides(
        ["data.inputs=[a.jsonl]", "tokenizer.path=tok.json", "output_dir=out", "workers=2"]
    )
    resolved = loader.load_stage_config(get_stage("data prep pretrain"), "tiny", cli_overrides=parsed)
    cfg = DataPrepPretrainConfig.model_validate(resolved.data)
    assert [s.path for s in cfg.data.inputs] == ["a.jsonl"]
    assert cfg.tokenizer.path == "tok.json" and cfg.output_dir == "out" and cfg.workers == 2
    assert cfg.output.name == "tiny-pretrain-data"
