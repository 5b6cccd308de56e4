"""Defect: an HF-only model given to a Megatron-Bridge stage became ``checkpoint.pretrained_checkpoint``;
Megatron-Bridge then finds no Megatron checkpoint and trains from random weights. The node refuses it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nemotron.artifacts.model import Artifact
from nemotron.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))

from super3.megatron.common import checkpoint_plan  # noqa: E402

CKPT = {"save_interval": 10, "async_save": False, "from_model": "weights"}


def _model(root: Path, *, hf: bool, megatron: bool) -> Artifact:
    meta = {}
    if hf:
        (root / "hf").mkdir(parents=True)
        (root / "hf" / "config.json").write_text("{}")
        (root / "hf" / "model.safetensors").write_bytes(b"\0")
        meta["hf_dir"] = "hf"
    if megatron:
        (root / "checkpoints" / "iter_0000005").mkdir(parents=True)
        (root / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("5")
        meta["megatron_checkpoint"] = "checkpoints"
    return Artifact(name="byo-base", version=1, kind="model", path=str(root), metadata=meta)


def test_hf_only_model_is_refused_naming_model_import(tmp_path):
    with pytest.raises(UserError) as err:
        checkpoint_plan(CKPT, tmp_path / "out", _model(tmp_path / "m", hf=True, megatron=False))
    line = err.value.one_line()
    assert "has no Megatron checkpoint (it is a Hugging Face checkpoint)" in line
    assert "nemotron super3 model import run.model=byo-base:v1" in line


def test_megatron_checkpoint_is_the_pretrained_checkpoint_even_next_to_hf(tmp_path):
    _, out, _, _ = checkpoint_plan(CKPT, tmp_path / "out", _model(tmp_path / "m", hf=True, megatron=True))
    assert out["checkpoint.pretrained_checkpoint"] == str(tmp_path / "m" / "checkpoints")
    assert out["checkpoint.finetune"] is True
