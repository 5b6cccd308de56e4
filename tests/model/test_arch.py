"""HybridArch: the Super3 numbers, building from a config ``model:`` section, and validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from nemotron.errors import UserError
from nemotron.model.arch import SUPER3, HybridArch

REPO = Path(__file__).resolve().parents[2]


def test_super3_facts() -> None:
    assert SUPER3.num_layers == len(SUPER3.hybrid_pattern) == 88
    assert (SUPER3.count("M"), SUPER3.count("E"), SUPER3.count("*"), SUPER3.count("-")) == (40, 40, 8, 0)
    assert SUPER3.mamba_d_inner == 8192
    assert SUPER3.mamba_conv_dim == 8192 + 2 * 8 * 128
    assert SUPER3.expert_io_size == 1024
    assert SUPER3.mtp_pattern == "*E" and SUPER3.mtp_num_layers == 2


def test_from_config_round_trip() -> None:
    cfg = SUPER3.to_config()
    assert HybridArch.from_config(cfg) == SUPER3
    # The optional extras may be left out of a config section.
    cfg.pop("ffn_hidden_size")
    cfg.pop("mtp_pattern")
    assert HybridArch.from_config(cfg) == SUPER3


def test_unknown_and_missing_keys_are_user_errors() -> None:
    cfg = SUPER3.to_config() | {"num_experts": 8}
    with pytest.raises(UserError, match="unknown model key"):
        HybridArch.from_config(cfg)
    cfg = SUPER3.to_config()
    del cfg["vocab_size"]
    with pytest.raises(UserError, match="missing key.*vocab_size"):
        HybridArch.from_config(cfg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_layers": 87}, "has 88 layers but model.num_layers is 87"),
        ({"hybrid_pattern": "X" + SUPER3.hybrid_pattern[1:]}, "may only contain"),
        ({"num_layers": 0, "hybrid_pattern": ""}, "num_layers must be positive"),
        ({"moe_router_topk": 513}, "exceeds"),
        ({"num_query_groups": 3}, "multiple of"),
        ({"mamba_num_groups": 3}, "multiple of"),
        ({"hidden_size": "4096"}, "must be an integer"),
        ({"untie_embeddings": 1}, "true or false"),
        ({"hybrid_pattern": "M-" + SUPER3.hybrid_pattern[2:]}, "ffn_hidden_size"),
        ({"vocab_size": -1}, "must be positive"),
    ],
)
def test_validation(change: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        replace(SUPER3, **change)


def test_optional_moe_parts() -> None:
    plain = replace(SUPER3, moe_latent_size=None, moe_shared_expert_intermediate_size=0)
    assert plain.expert_io_size == SUPER3.hidden_size
    assert replace(SUPER3, mtp_num_layers=0, mtp_pattern="").mtp_num_layers == 0


def test_repo_config_model_sections_parse() -> None:
    """Every ``model:`` section shipped under configs/ builds a HybridArch (keys are the contract)."""
    files = sorted((REPO / "configs").rglob("*.yaml")) if (REPO / "configs").is_dir() else []
    seen = 0
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, dict) or "hybrid_pattern" not in model:
            continue
        # Keys left out take the schema defaults, which are the Super3 numbers.
        HybridArch.from_config(SUPER3.to_config() | model)
        seen += 1
    assert seen, "the shipped configs have model: sections"
