"""Calculator: published Super3 counts, formulas against the real HF NemotronH module tree, memory
sharding behaviour, FLOP and GPU-hour sanity."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from nemotron.errors import UserError
from nemotron.model.arch import SUPER3, HybridArch
from nemotron.model.calculator import (
    count_params,
    flops_per_token,
    gpu_hours,
    memory_per_gpu,
    mtp_params,
)

PRETRAIN = {"tensor": 4, "pipeline": 1, "expert": 8, "context": 1, "data": 8}
SFT = {"tensor": 1, "pipeline": 1, "expert": 8, "context": 1, "data": 32}

TINY = HybridArch(  # the Super-shaped toy of configs/super3/*/tiny.yaml
    num_layers=7,
    hybrid_pattern="MEM*EME",
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    kv_channels=16,
    mamba_num_heads=8,
    mamba_head_dim=16,
    mamba_state_dim=16,
    mamba_num_groups=2,
    mamba_conv_kernel=4,
    num_moe_experts=8,
    moe_router_topk=2,
    moe_ffn_hidden_size=32,
    moe_latent_size=32,
    moe_shared_expert_intermediate_size=64,
    vocab_size=4096,
    untie_embeddings=True,
    mtp_num_layers=0,
)


# ---------------------------------------------------------------- published numbers


def test_super3_reproduces_published_totals() -> None:
    pc = count_params(SUPER3)
    assert round(pc.total / 1e9, 1) == 120.6
    assert round(pc.active / 1e9, 1) == 12.7
    assert round(pc.mtp / 1e9, 1) == 2.9  # "~2.9B" on top, not in the 120.6B
    assert pc.embedding == 2 * 131072 * 4096


def test_super3_exact_stored_count() -> None:
    """Hand arithmetic per layer kind (independent of the module's helper functions)."""
    h = 4096
    mamba = h * (8192 + 10240 + 128) + 10240 * 5 + 3 * 128 + 8192 + 8192 * h + h
    attention = h * (32 + 4) * 128 + 32 * 128 * h + h
    moe_dense = 512 * h + 2 * h * 1024 + 2 * h * 5376 + h
    experts = 512 * 2 * 2688 * 1024
    stored = 40 * mamba + 40 * (moe_dense + experts) + 8 * attention + 2 * 131072 * h + h
    pc = count_params(SUPER3)
    assert pc.stored_total == stored == 120_668_687_360
    assert pc.router == 40 * 512 * h
    assert pc.stored_active == stored - 40 * experts * (512 - 22) // 512
    assert sum(pc.by_block.values()) == pc.stored_total


def test_mtp_is_one_shared_block() -> None:
    one_pass = mtp_params(replace(SUPER3, mtp_num_layers=1))
    assert mtp_params(SUPER3) == one_pass  # weights shared across the 2 passes
    assert mtp_params(replace(SUPER3, mtp_num_layers=0, mtp_pattern="")) == 0


# ---------------------------------------------------------------- against HF transformers


def _hf_counts(a: HybridArch) -> tuple[int, int, int]:
    """(stored params, router params, stored active params) of the real HF model built on meta."""
    import torch
    import transformers

    torch.set_num_threads(1)
    cfg = transformers.NemotronHConfig(
        hybrid_override_pattern=a.hybrid_pattern,
        hidden_size=a.hidden_size,
        num_attention_heads=a.num_attention_heads,
        num_key_value_heads=a.num_query_groups,
        head_dim=a.kv_channels,
        mamba_num_heads=a.mamba_num_heads,
        mamba_head_dim=a.mamba_head_dim,
        ssm_state_size=a.mamba_state_dim,
        n_groups=a.mamba_num_groups,
        conv_kernel=a.mamba_conv_kernel,
        n_routed_experts=a.num_moe_experts,
        num_experts_per_tok=a.moe_router_topk,
        moe_intermediate_size=a.moe_ffn_hidden_size,
        moe_latent_size=a.moe_latent_size,
        moe_shared_expert_intermediate_size=a.moe_shared_expert_intermediate_size,
        intermediate_size=a.ffn_hidden_size or 1,
        vocab_size=a.vocab_size,
        tie_word_embeddings=not a.untie_embeddings,
    )
    with torch.device("meta"):
        model = transformers.NemotronHForCausalLM(cfg)
    total = router = experts = 0
    for name, p in model.named_parameters():  # shared (tied) tensors are listed once
        total += p.numel()
        if name.endswith("mixer.gate.weight"):
            router += p.numel()
        if ".mixer.experts." in name:
            experts += p.numel()
    active = total - experts + experts * a.moe_router_topk // a.num_moe_experts
    return total, router, active


HF_CASES = {
    "tiny": TINY,
    "plain-moe": replace(TINY, moe_latent_size=None, num_moe_experts=6, moe_router_topk=3),
    "dense-mlp": replace(
        TINY,
        num_layers=9,
        hybrid_pattern="M-*EM-E*M",
        ffn_hidden_size=48,
        num_query_groups=4,
        mamba_num_groups=4,
        mamba_conv_kernel=3,
    ),
    "odd-sizes": replace(
        TINY,
        hidden_size=40,
        kv_channels=12,
        mamba_num_heads=6,
        mamba_head_dim=10,
        mamba_state_dim=24,
        mamba_num_groups=3,
        moe_ffn_hidden_size=20,
        moe_latent_size=24,
        moe_shared_expert_intermediate_size=36,
        vocab_size=1000,
    ),
}


@pytest.mark.parametrize("name", sorted(HF_CASES))
def test_formula_matches_hf_small_configs(name: str) -> None:
    a = HF_CASES[name]
    total, router, active = _hf_counts(a)
    pc = count_params(a)
    assert pc.stored_total == total
    assert pc.router == router
    assert pc.stored_active == active


def test_tied_embeddings_share_one_matrix() -> None:
    """HF NemotronH never ties (``_tied_weights_keys`` is empty), so this is checked on our side only."""
    tied = count_params(replace(TINY, untie_embeddings=False))
    untied = count_params(TINY)
    assert untied.stored_total - tied.stored_total == TINY.vocab_size * TINY.hidden_size
    assert tied.embedding == TINY.vocab_size * TINY.hidden_size


def test_formula_matches_hf_full_super3() -> None:
    """The full 120B model on the meta device costs no memory and well under a second to build."""
    total, router, active = _hf_counts(SUPER3)
    pc = count_params(SUPER3)
    assert (pc.stored_total, pc.router, pc.stored_active) == (total, router, active)


# ---------------------------------------------------------------- memory


def test_memory_shrinks_with_expert_and_tensor_parallelism() -> None:
    base = memory_per_gpu(SUPER3, {**PRETRAIN, "expert": 4}, "bf16", 1, 8192)
    more_ep = memory_per_gpu(SUPER3, PRETRAIN, "bf16", 1, 8192)
    assert more_ep.params_per_gpu < base.params_per_gpu
    # Routed experts (40 main-stack MoE layers + the MTP one) halve with EP 4 -> 8; the rest stays.
    experts = count_params(SUPER3).by_block["moe_routed_experts"] * 41 // 40
    assert base.params_per_gpu - more_ep.params_per_gpu == pytest.approx(experts / 8, rel=1e-6)

    tp1 = memory_per_gpu(SUPER3, {**PRETRAIN, "tensor": 1, "data": 32}, "bf16", 1, 8192)
    tp4 = memory_per_gpu(SUPER3, PRETRAIN, "bf16", 1, 8192)
    assert tp4.weights < tp1.weights and tp4.activations < tp1.activations
    assert tp4.activations == pytest.approx(tp1.activations / 4, rel=0.02)


def test_distributed_optimizer_shards_over_data_parallel() -> None:
    small_dp = memory_per_gpu(SUPER3, {**PRETRAIN, "data": 2}, "bf16")
    big_dp = memory_per_gpu(SUPER3, {**PRETRAIN, "data": 16}, "bf16")
    assert big_dp.optimizer < small_dp.optimizer
    assert big_dp.weights == small_dp.weights and big_dp.grads == small_dp.grads
    plain = memory_per_gpu(SUPER3, PRETRAIN, "bf16", optimizer="adam")
    assert plain.optimizer == pytest.approx(plain.params_per_gpu * 12 / 1024**3, rel=1e-6)


def test_memory_precision_sequence_and_recompute() -> None:
    bf16 = memory_per_gpu(SUPER3, PRETRAIN, "bf16")
    nvfp4 = memory_per_gpu(SUPER3, PRETRAIN, "nvfp4")
    assert nvfp4.activations < bf16.activations  # GEMM inputs saved quantized
    assert nvfp4.weights > bf16.weights  # BF16 weights + cached NVFP4 copy
    short = memory_per_gpu(SUPER3, PRETRAIN, "bf16", seq_length=4096)
    assert short.activations == pytest.approx(bf16.activations / 2, rel=1e-9)
    cp2 = memory_per_gpu(SUPER3, {**PRETRAIN, "context": 2, "data": 4}, "bf16")
    assert cp2.activations == pytest.approx(bf16.activations / 2, rel=1e-9)
    sel = memory_per_gpu(SUPER3, PRETRAIN, "bf16", recompute="selective")
    full = memory_per_gpu(SUPER3, PRETRAIN, "bf16", recompute="full")
    assert full.activations < sel.activations < bf16.activations
    assert bf16.total == pytest.approx(bf16.weights + bf16.grads + bf16.optimizer + bf16.activations + bf16.overhead)


def test_pipeline_parallel_reports_most_loaded_stage() -> None:
    pp1 = memory_per_gpu(SUPER3, {**PRETRAIN, "data": 8}, "bf16")
    pp4 = memory_per_gpu(SUPER3, {**PRETRAIN, "pipeline": 4, "data": 2}, "bf16")
    assert pp4.params_per_gpu < pp1.params_per_gpu / 2
    assert pp4.pipeline_stage in range(4)


def test_memory_rejects_bad_parallel_settings() -> None:
    with pytest.raises(UserError, match="must divide model.num_moe_experts"):
        memory_per_gpu(SUPER3, {**PRETRAIN, "expert": 3, "data": 24}, "bf16")
    with pytest.raises(UserError, match="unknown parallel key"):
        memory_per_gpu(SUPER3, {**PRETRAIN, "tp": 4}, "bf16")
    with pytest.raises(UserError, match="parallel.data is not set"):
        memory_per_gpu(SUPER3, {"tensor": 4, "expert": 8}, "bf16")
    with pytest.raises(UserError, match="unknown precision"):
        memory_per_gpu(SUPER3, PRETRAIN, "int3")
    with pytest.raises(UserError, match="unknown optimizer"):
        memory_per_gpu(SUPER3, PRETRAIN, "bf16", optimizer="lion")
    # data derived from the GPU count
    derived = memory_per_gpu(SUPER3, {"tensor": 4, "expert": 8}, "bf16", num_gpus=32)
    assert derived == memory_per_gpu(SUPER3, PRETRAIN, "bf16")


# ---------------------------------------------------------------- FLOPs and GPU-hours


def test_flops_per_token_sanity() -> None:
    pc = count_params(SUPER3)
    no_mtp = flops_per_token(SUPER3, 8192, include_mtp=False)
    # 6 x active weights, less the input-embedding lookup and the non-GEMM vectors.
    assert 6 * (pc.active - 131072 * 4096) < no_mtp.matmul < 6 * pc.stored_active
    # Attention scores: 8 layers x 3 x 4 x 4096 x (s+1)/2
    assert no_mtp.attention == pytest.approx(8 * 3 * 4 * 4096 * 8193 / 2)
    assert 0 < no_mtp.ssm < 0.05 * no_mtp.matmul
    assert no_mtp.mtp == 0
    longer = flops_per_token(SUPER3, 16384, include_mtp=False)
    assert longer.matmul == no_mtp.matmul and longer.attention > 1.99 * no_mtp.attention
    with_mtp = flops_per_token(SUPER3, 8192)
    assert 0.05 * no_mtp.total < with_mtp.mtp < 0.25 * no_mtp.total


def test_gpu_hours() -> None:
    tokens = 25 * 10**12
    r = gpu_hours(SUPER3, tokens, 32, gpu="B200", precision="bf16", mfu=0.35)
    expected = flops_per_token(SUPER3, 8192).total * tokens / (2250e12 * 0.35) / 3600
    assert r.gpu_hours == pytest.approx(expected)
    assert r.wall_clock_hours == pytest.approx(expected / 32)
    h100 = gpu_hours(SUPER3, tokens, 32, gpu="H100", precision="bf16", mfu=0.35)
    assert h100.gpu_hours > 2 * r.gpu_hours
    with pytest.raises(UserError, match="no nvfp4"):
        gpu_hours(SUPER3, tokens, 32, gpu="H100", precision="nvfp4")
    with pytest.raises(UserError, match="unknown GPU"):
        gpu_hours(SUPER3, tokens, 32, gpu="TPU")


def test_import_is_light() -> None:
    code = (
        "import sys, nemotron.model.calculator, nemotron.model.arch;"
        "bad=[m for m in ('torch','numpy','pydantic','transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
