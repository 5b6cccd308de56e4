"""The tiny model: Megatron-named config section -> HF NemotronH, save/load, padding behaviour."""

from __future__ import annotations

import pytest
import torch
from super3.tiny import model as tiny_model

from nemotron.errors import UserError


@pytest.fixture(autouse=True)
def _threads():
    tiny_model.set_threads()


def expected_params(m: dict, vocab: int) -> int:
    """Parameter count of a NemotronH built from a Megatron-named section, computed by hand."""
    h = m["hidden_size"]
    inner = m["mamba_num_heads"] * m["mamba_head_dim"]
    gn = m["mamba_num_groups"] * m["mamba_state_dim"]
    conv_dim = inner + 2 * gn
    mamba = (
        h * (inner + conv_dim + m["mamba_num_heads"])  # in_proj: gate, x/B/C, dt
        + conv_dim * m["mamba_conv_kernel"]
        + conv_dim  # depthwise conv + bias
        + 3 * m["mamba_num_heads"]  # dt_bias, A_log, D
        + inner  # gated RMSNorm
        + inner * h  # out_proj
    )
    q = m["num_attention_heads"] * m["kv_channels"]
    kv = m["num_query_groups"] * m["kv_channels"]
    attention = h * q + 2 * h * kv + q * h
    lat, ffn, e = m["moe_latent_size"], m["moe_ffn_hidden_size"], m["num_moe_experts"]
    moe = e * 2 * ffn * lat + e * h + 2 * h * m["moe_shared_expert_intermediate_size"] + 2 * h * lat
    per = {"M": mamba, "*": attention, "E": moe}
    blocks = sum(per[c] + h for c in m["hybrid_pattern"])  # + the block's pre-norm
    return 2 * vocab * h + blocks + h  # untied embeddings + lm_head, final norm


def test_config_maps_megatron_names(tiny_model_section):
    cfg = tiny_model.build_config(tiny_model_section, vocab_size=300)
    m = tiny_model_section
    assert cfg.hybrid_override_pattern == m["hybrid_pattern"] == "MEM*EME"
    assert tiny_model.layer_counts(cfg) == {"mamba": 3, "moe": 3, "attention": 1, "mlp": 0}
    assert (cfg.n_routed_experts, cfg.num_experts_per_tok) == (m["num_moe_experts"], m["moe_router_topk"])
    assert cfg.moe_intermediate_size == m["moe_ffn_hidden_size"]
    assert cfg.moe_latent_size == m["moe_latent_size"]
    assert cfg.moe_shared_expert_intermediate_size == m["moe_shared_expert_intermediate_size"]
    assert (cfg.num_key_value_heads, cfg.head_dim) == (m["num_query_groups"], m["kv_channels"])
    assert (cfg.mamba_num_heads, cfg.mamba_head_dim) == (m["mamba_num_heads"], m["mamba_head_dim"])
    assert (cfg.ssm_state_size, cfg.n_groups, cfg.conv_kernel) == (16, 2, 4)
    assert cfg.vocab_size == 300 and cfg.tie_word_embeddings is False
    assert cfg.num_nextn_predict_layers == 0 and cfg.mlp_hidden_act == "relu2"


def test_new_model_params_and_modules(tiny_model_section, tiny_tokenizer):
    model = tiny_model.new_model(tiny_model_section, seed=0, tokenizer=tiny_tokenizer)
    assert tiny_model.param_count(model) == expected_params(tiny_model_section, len(tiny_tokenizer))
    kinds = [type(layer.mixer).__name__ for layer in model.model.layers]
    assert kinds == [
        "NemotronHMamba2Mixer",
        "NemotronHMoE",
        "NemotronHMamba2Mixer",
        "NemotronHAttention",
        "NemotronHMoE",
        "NemotronHMamba2Mixer",
        "NemotronHMoE",
    ]
    moe = model.model.layers[1].mixer
    assert moe.fc1_latent_proj.out_features == tiny_model_section["moe_latent_size"]
    assert moe.experts.up_proj.shape == (8, 32, 32)  # experts work inside the latent
    # sigmoid routing with normalised top-k weights
    x = torch.randn(5, tiny_model_section["hidden_size"])
    logits, weights, idx = moe.gate(x)
    assert idx.shape == (5, 2)
    assert torch.allclose(weights.sum(-1), torch.ones(5), atol=1e-5)
    sig = logits.sigmoid().gather(1, idx)
    assert torch.allclose(weights, sig / sig.sum(-1, keepdim=True), atol=1e-5)
    # same seed, same weights
    again = tiny_model.new_model(tiny_model_section, seed=0, tokenizer=tiny_tokenizer)
    assert torch.equal(model.lm_head.weight, again.lm_head.weight)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hybrid_pattern": "MEM*EMX"}, "invalid"),
        ({"hybrid_pattern": "MEM*EM"}, "num_layers"),
        ({"untie_embeddings": False}, "untie_embeddings"),
        ({"mamba_num_groups": 3}, "mamba_num_groups"),
    ],
)
def test_bad_sections_are_user_errors(tiny_model_section, change, message):
    with pytest.raises(UserError, match=message):
        tiny_model.build_config({**tiny_model_section, **change})


def test_save_load_roundtrip_carries_tokenizer(tmp_path, tiny_model_section, tiny_tokenizer):
    model = tiny_model.new_model(tiny_model_section, seed=3, tokenizer=tiny_tokenizer).eval()
    out = tiny_model.save_model(model, tiny_tokenizer, tmp_path / "art" / "hf")
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not [p for p in (tmp_path / "art").iterdir() if p.name.startswith(".")]  # no temp dirs left
    for where in (out, tmp_path / "art"):  # the HF dir itself or the artifact dir holding hf/
        loaded, tok = tiny_model.load_model(where)
        ids = torch.tensor([tok("the cat sees a tree.")["input_ids"]])
        with torch.no_grad():
            assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token_id == im_end and im_end in loaded.generation_config.eos_token_id
    assert loaded.generation_config.pad_token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<pad>")
    # saving again over an existing directory replaces it atomically
    tiny_model.save_model(loaded, tok, out)
    assert (out / "config.json").exists()


def test_right_padding_leaves_real_tokens_unchanged(tiny_model_section, tiny_tokenizer):
    """Mamba, attention and MoE layers: a right-padded row gives the same logits on its real tokens."""
    model = tiny_model.new_model(tiny_model_section, seed=1, tokenizer=tiny_tokenizer).eval()
    short = tiny_tokenizer("the dog likes the ball.")["input_ids"]
    long = tiny_tokenizer("my friend follows a house. the cat sees the river. a dog helps.")["input_ids"]
    pad = tiny_tokenizer.pad_token_id
    batch = torch.tensor([short + [pad] * (len(long) - len(short)), long])
    mask = torch.tensor([[1] * len(short) + [0] * (len(long) - len(short)), [1] * len(long)])
    with torch.no_grad():
        padded = model(input_ids=batch, attention_mask=mask).logits
        alone = model(input_ids=torch.tensor([short])).logits
        alone_long = model(input_ids=torch.tensor([long])).logits
    assert torch.allclose(padded[0, : len(short)], alone[0], atol=1e-4)
    assert torch.allclose(padded[1], alone_long[0], atol=1e-4)


def test_load_model_rejects_non_model_dir(tmp_path):
    with pytest.raises(UserError, match="not a tiny model directory"):
        tiny_model.load_model(tmp_path)
