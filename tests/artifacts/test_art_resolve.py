"""${art:NAME,FIELD} expansion and run: slot resolution through a real registry."""

from __future__ import annotations

import pytest

from nemotron.artifacts.resolve import find_art_refs, resolve_art_refs, resolve_run_refs
from nemotron.errors import UserError


@pytest.fixture
def reg(registry, make_data, job):
    registry.publish(
        "sft-data",
        "sft-data",
        make_data("sft"),
        {"tokenizer": {"name": "gpt2", "vocab": 50257}, "rows": 475},
        [],
        job("data_prep.sft", "j1"),
    )
    registry.publish(
        "sft-data", "sft-data", make_data("sft2"), {"rows": 9}, [], job("data_prep.sft", "j2"), aliases=("latest",)
    )
    registry.set_alias("sft-data:v1", "golden")
    return registry


def test_whole_string_refs_keep_their_type(reg, tmp_path):
    cfg = {
        "data": {
            "path": "${art:sft-data,path}",
            "version": "${art:sft-data:golden,version}",
            "vocab": "${art:sft-data:v1,metadata.tokenizer.vocab}",
            "default_field": "${art:sft-data:golden}",
            "stage": "${art:sft-data,run.stage}",
            "ref": "${art:sft-data,ref}",
        },
        "list": ["${art:sft-data,digest}", 3, None],
        "plain": "no refs here ${oc.env:HOME}",
    }
    out = resolve_art_refs(cfg, reg)
    assert out["data"]["path"] == str((tmp_path / "outputs" / "sft2").resolve())
    assert out["data"]["version"] == 1 and isinstance(out["data"]["version"], int)
    assert out["data"]["vocab"] == 50257
    assert out["data"]["default_field"] == str((tmp_path / "outputs" / "sft").resolve())
    assert out["data"]["stage"] == "data_prep.sft" and out["data"]["ref"] == "sft-data:v2"
    assert out["list"][0] == reg.get("sft-data").digest and out["list"][1:] == [3, None]
    assert out["plain"] == cfg["plain"]
    assert cfg["data"]["path"] == "${art:sft-data,path}"  # input untouched


def test_embedded_refs_become_text(reg, tmp_path):
    out = resolve_art_refs({"blend": "${art:sft-data,path}/blend.json (v${art:sft-data,version})"}, reg)
    assert out["blend"] == f"{(tmp_path / 'outputs' / 'sft2').resolve()}/blend.json (v2)"
    assert find_art_refs({"a": ["x ${art:a:v1,path} ${art:b,version}"], "b": "${art:a:v1}"}) == ["a:v1", "b"]


def test_errors_are_user_errors_with_fixes(reg):
    with pytest.raises(UserError, match="no metadata.tokenizer.bogus") as err:
        resolve_art_refs("${art:sft-data:golden,metadata.tokenizer.bogus}", reg)
    assert "name" in err.value.hint and "vocab" in err.value.hint
    with pytest.raises(UserError, match="unknown artifact field 'size'"):
        resolve_art_refs("${art:sft-data,size}", reg)
    with pytest.raises(UserError) as err:
        resolve_art_refs({"m": "${art:rl-rlhf-model,path}"}, reg)
    assert "rl.rlhf" in err.value.hint
    with pytest.raises(UserError, match="malformed"):
        resolve_art_refs("${art:sft-data,path", reg)


def test_run_refs_check_kind_and_required_ports(reg, make_data, job):
    resolved = resolve_run_refs({"model": None, "data": "sft-data:golden"}, reg)
    assert resolved["data"].ref == "sft-data:v1" and "model" not in resolved
    with pytest.raises(UserError, match="needs input run.model"):
        resolve_run_refs({"data": "sft-data"}, reg, stage="sft")
    reg.publish("pretrain-model", "model", make_data("m"), {}, [], job("pretrain", "j3"))
    ok = resolve_run_refs({"model": "pretrain-model", "data": "sft-data"}, reg, stage="sft")
    assert {s: a.ref for s, a in ok.items()} == {"model": "pretrain-model:v1", "data": "sft-data:v2"}
    with pytest.raises(UserError, match="is a sft-data artifact but stage sft expects model"):
        resolve_run_refs({"model": "sft-data", "data": "sft-data"}, reg, stage="sft")
    with pytest.raises(UserError) as err:
        resolve_run_refs({"model": "pretrain-model", "data": "tiny-sft-data:latest"}, reg, stage="sft")
    assert err.value.message.startswith("run.data: artifact 'tiny-sft-data' not found")
    assert "data_prep.sft" in err.value.hint
