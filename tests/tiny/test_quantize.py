"""Quantize stage of the tiny backend: the NVFP4 CPU emulation, ModelOpt recipes on the real NemotronH
module tree, and the stage end to end (calibrate, fold, save, restore)."""

from __future__ import annotations

import copy
import json
import re
import types

import pytest
import torch
from conftest import addition_chats, make_sft_data, torch_module_marks
from super3.tiny import model as tiny_model
from super3.tiny import nvfp4
from super3.tiny import quantize as Q

pytestmark = torch_module_marks()


# --------------------------------------------------------------------------------------------------
# NVFP4 emulation


def test_e2m1_rounding_hand_values():
    x = torch.tensor([0.0, 0.2, 0.25, 0.26, 0.74, 0.75, 1.25, 1.3, 1.75, 2.5, 2.6, 3.5, 4.9, 5.0, 5.01, 9.0])
    want = [0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 6.0, 6.0]
    assert nvfp4.round_to_e2m1(x).tolist() == want
    assert nvfp4.round_to_e2m1(-x).tolist() == [-w for w in want]
    assert set(nvfp4.round_to_e2m1(torch.linspace(-7, 7, 1001)).abs().tolist()) == set(nvfp4.E2M1_GRID)


def test_nvfp4_fake_quant_hand_computed_blocks():
    x = torch.zeros(2, 16)
    x[0, :14] = torch.tensor([6, 3, 1.4, -0.3, 0.25, 0.75, 5, 5.1, -2.6, 1.75, 0, 2.5, 3.5, -1.25])
    x[1, :2] = torch.tensor([0.3, -0.1])
    out = nvfp4.nvfp4_fake_quant(x)
    # Block 0 holds the tensor amax 6: s2 = 6 / (6 * 448), block scale 448 (exact in E4M3), so the
    # effective scale is 1 and values land on the E2M1 grid directly (ties to even: 0.25->0, 0.75->1, 5->4).
    assert out[0, :14].tolist() == [6, 3, 1.5, -0.5, 0, 1, 4, 6, -3, 2, 0, 2, 4, -1]
    # Block 1: amax 0.3 -> scale 0.3 / (6 * s2) = 22.4 -> E4M3 22 (step 2 in [16, 32)); effective
    # scale 22 * 6 / 2688; 0.3 / that = 6.11 saturates to 6, -0.1 / that = -2.04 -> -2.
    eff = 22 * 6 / 2688
    assert out[1, 0].item() == pytest.approx(6 * eff, rel=1e-6)
    assert out[1, 1].item() == pytest.approx(-2 * eff, rel=1e-6)
    codes, scales, s2 = nvfp4.nvfp4_quantize(x)
    assert scales.dtype == torch.float8_e4m3fn and scales.float().tolist() == [[448.0], [22.0]]
    assert s2.item() == pytest.approx(6 / 2688)
    assert codes[1, :2].tolist() == [6.0, -2.0]


@pytest.mark.parametrize("shape", [(8, 64), (3, 5, 32), (2, 40)])
@pytest.mark.parametrize("amax", [None, 0.7, 25.0])
def test_nvfp4_matches_modelopt_reference(shape, amax):
    """Bit-equal to ModelOpt's CPU reference NVFP4QTensor.quantize + dequantize."""
    from modelopt.torch.quantization.qtensor.nvfp4_tensor import NVFP4QTensor

    torch.manual_seed(sum(shape))
    x = torch.randn(shape) * torch.rand(*shape[:-1], 1) * 4
    padded = torch.nn.functional.pad(x, (0, (-shape[-1]) % 16))  # ModelOpt's dequantize needs whole blocks
    s2 = None if amax is None else torch.tensor(amax) / (6 * 448)
    q, scale, double_scale = NVFP4QTensor.quantize(padded.clone(), 16, weights_scaling_factor_2=s2)
    ref = q.dequantize(dtype=torch.float32, scale=scale, double_scale=double_scale, block_sizes={-1: 16})
    mine = nvfp4.nvfp4_fake_quant(x, amax=None if amax is None else torch.tensor(amax))
    assert mine.shape == x.shape
    assert torch.equal(mine, ref[..., : shape[-1]])
    err = (mine - x).norm() / x.norm()
    assert 0 < err < (0.2 if amax != 0.7 else 1.0)  # amax 0.7 clips most values by design


def test_nvfp4_straight_through_gradient_and_dtype():
    x = torch.randn(4, 32, dtype=torch.bfloat16, requires_grad=True)
    y = nvfp4.nvfp4_fake_quant(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_modelopt_nvfp4_needs_cuda_and_emulation_replaces_it():
    import modelopt.torch.quantization as mtq

    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(32, 16, bias=False))
    x = torch.randn(6, 32)
    if not torch.cuda.is_available():  # calibration passes; the first quantized forward asserts CUDA
        stock = mtq.quantize(copy.deepcopy(lin), mtq.NVFP4_DEFAULT_CFG, forward_loop=lambda m: m(x))
        with pytest.raises(AssertionError, match="CUDA"):
            stock(x)
    cfg, changed = nvfp4.emulate_on_cpu(mtq.NVFP4_DEFAULT_CFG)
    assert changed == 2  # weight and input quantizer entries
    assert "backend" not in json.dumps(mtq.NVFP4_DEFAULT_CFG, default=str)  # the original is untouched
    q = mtq.quantize(copy.deepcopy(lin), cfg, forward_loop=lambda m: m(x))
    in_amax = q[0].input_quantizer._amax
    assert in_amax.item() == pytest.approx(x.abs().max().item())
    want = torch.nn.functional.linear(nvfp4.nvfp4_fake_quant(x, amax=in_amax), nvfp4.nvfp4_fake_quant(lin[0].weight))
    with torch.no_grad():
        assert torch.allclose(q(x), want, atol=1e-6)
        assert not torch.allclose(q(x), lin(x), atol=1e-3)


# --------------------------------------------------------------------------------------------------
# recipes


@pytest.mark.parametrize("name", sorted(Q.RECIPES))
def test_recipes_are_format_default_plus_documented_exclusions(name):
    """Each ModelOpt mamba_moe preset is the format default + exactly the patterns in quantize.py."""
    import modelopt.torch.quantization as mtq

    recipe = Q.RECIPES[name]
    preset, base = getattr(mtq, recipe.preset), getattr(mtq, recipe.base)
    extra = [{"quantizer_name": p, "enable": False} for p in recipe.excluded]
    assert preset["quant_cfg"] == base["quant_cfg"] + extra
    assert preset["algorithm"] == base["algorithm"] == "max"


def _random_batches(vocab: int, n: int = 2):
    g = torch.Generator().manual_seed(0)
    return [
        {"input_ids": (ids := torch.randint(0, vocab, (4, 48), generator=g)), "attention_mask": torch.ones_like(ids)}
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def random_model(tiny_model_section):
    return tiny_model.new_model(tiny_model_section, seed=0, vocab_size=512).eval()


def _expected_weight_quantized(model, variant: str) -> set[str]:
    """From the module tree: expert (per expert) + shared-expert linears, plus Mamba in/out for aggressive."""
    want = set()
    for i, block in enumerate(model.config.layers_block_type):
        prefix = f"model.layers.{i}.mixer"
        if block == "moe":
            n = model.config.n_routed_experts
            want |= {f"{prefix}.experts.{p}[{e}]" for p in ("up_proj", "down_proj") for e in range(n)}
            want |= {f"{prefix}.shared_experts.up_proj", f"{prefix}.shared_experts.down_proj"}
        if block == "linear_attention" and variant == "aggressive":
            want |= {f"{prefix}.in_proj", f"{prefix}.out_proj"}
    return want


@pytest.mark.parametrize("variant", ["conservative", "aggressive"])
def test_fp8_quantizers_exactly_where_the_recipe_says(random_model, variant):
    batches = _random_batches(512)
    cfg, emulated = Q.recipe_config(f"mamba_moe_fp8_{variant}")
    assert not emulated
    q = Q.quantize_model(copy.deepcopy(random_model), cfg, batches)
    layout = Q.quantizer_layout(q)
    mods = set(Q.quantized_modules(layout))
    assert mods == _expected_weight_quantized(random_model, variant)
    assert not any(
        re.search(r"lm_head|embeddings|conv1d|q_proj|k_proj|v_proj|o_proj|latent_proj|gate", m) for m in mods
    )
    # one input quantizer per quantized linear; fused experts share one per projection
    n_moe = random_model.config.layers_block_type.count("moe")
    n_mamba = random_model.config.layers_block_type.count("linear_attention")
    assert len(layout["input"]) == 4 * n_moe + (2 * n_mamba if variant == "aggressive" else 0)
    assert layout["other"] == []


def test_fp8_changes_weights_and_outputs_only_slightly(random_model):
    batches = _random_batches(512)
    ref = Q.logits(random_model, batches[1])
    cfg, _ = Q.recipe_config("mamba_moe_fp8_conservative")
    q = Q.quantize_model(copy.deepcopy(random_model), cfg, batches)
    dev = Q.output_deviation(ref, q, batches[1])
    assert 0 < dev["rel_logit_error"] < 0.05, dev
    assert dev["top1_agreement"] > 0.9, dev
    import modelopt.torch.quantization as mtq

    mtq.fold_weight(q)
    before, after = random_model.state_dict(), q.state_dict()
    w0, w1 = (
        before["model.layers.1.mixer.shared_experts.up_proj.weight"],
        after["model.layers.1.mixer.shared_experts.up_proj.weight"],
    )
    rel = ((w1 - w0).norm() / w0.norm()).item()
    assert 0 < rel < 0.05  # E4M3 keeps 3 mantissa bits: <= 6.25 % per element
    amax = w0.abs().max()
    assert torch.equal(w1, (w1 * (448 / amax)).to(torch.float8_e4m3fn).float() * (amax / 448))  # on the FP8 grid
    for kept in ("model.layers.0.mixer.in_proj.weight", "model.layers.3.mixer.q_proj.weight", "lm_head.weight"):
        assert torch.equal(before[kept], after[kept]), kept


def test_nvfp4_recipe_applies_the_emulation_per_expert(random_model):
    batches = _random_batches(512)
    ref = Q.logits(random_model, batches[1])
    cfg, emulated = Q.recipe_config("mamba_moe_nvfp4_conservative", emulate_nvfp4=True)
    assert emulated
    q = Q.quantize_model(copy.deepcopy(random_model), cfg, batches)
    experts = q.model.layers[1].mixer.experts
    w = random_model.model.layers[1].mixer.experts.up_proj.detach()
    quantizers = experts.up_proj_weight_quantizers
    assert quantizers[0].backend == nvfp4.BACKEND
    want = torch.stack([nvfp4.nvfp4_fake_quant(w[e], amax=quantizers[e]._amax) for e in range(len(quantizers))])
    import modelopt.torch.quantization as mtq

    dev = Q.output_deviation(ref, q, batches[1])
    mtq.fold_weight(q)
    assert torch.equal(q.model.layers[1].mixer.experts.up_proj.detach(), want)
    fp8_dev = Q.output_deviation(
        ref,
        Q.quantize_model(copy.deepcopy(random_model), Q.recipe_config("mamba_moe_fp8_conservative")[0], batches),
        batches[1],
    )
    assert fp8_dev["rel_logit_error"] < dev["rel_logit_error"] < 0.2, (fp8_dev, dev)


# --------------------------------------------------------------------------------------------------
# the stage


def test_unknown_recipe_is_a_user_error():
    from nemotron.errors import UserError

    with pytest.raises(UserError, match="unknown quantization config"):
        Q._quant_section({"quant": {"configs": ["mamba_moe_int8"]}})


def test_calibration_rejects_foreign_token_ids(tmp_path, tiny_tokenizer, tiny_tokenizer_file):
    from nemotron.errors import UserError

    calib = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, addition_chats(4), pack_size=96)
    small = type("Tok", (), {"pad_token_id": 0, "__len__": lambda self: 5})()
    with pytest.raises(UserError, match="token id"):
        Q.calibration_batches({"calib_size": 4, "calib_seq_length": 32, "calib_batch_size": 2}, calib, small)
    batches, info = Q.calibration_batches(
        {"calib_size": 4, "calib_seq_length": 32, "calib_batch_size": 2}, calib, tiny_tokenizer
    )
    assert info["sequences"] == 4 and all(b["input_ids"].shape[1] <= 32 for b in batches)


def test_calibration_without_calib_input_uses_shipped_prose(tiny_tokenizer):
    batches, info = Q.calibration_batches(
        {"calib_size": 5, "calib_seq_length": 24, "calib_batch_size": 2}, None, tiny_tokenizer
    )
    assert info["sequences"] == 5 and info["batches"] == 3 and "prose" in info["source"]
    assert batches[0]["input_ids"].shape[1] <= 24
    assert batches[-1]["input_ids"].shape[0] == 1


def test_run_quantizes_saves_and_restores(tmp_path, tiny_model_dir, tiny_tokenizer_file):
    calib = make_sft_data(tmp_path / "sft", tiny_tokenizer_file, addition_chats(60), pack_size=96)
    cfg = {
        "quant": {
            "configs": ["mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"],
            "calib_size": 16,
            "calib_seq_length": 64,
            "calib_batch_size": 8,
        }
    }
    out = tmp_path / "out"
    meta = Q.run(cfg, {"model": types.SimpleNamespace(path=tiny_model_dir, metadata={}), "calib": calib}, out)
    assert meta["calibration"]["sequences"] == 16 and "sft-data" in meta["calibration"]["source"]
    assert set(meta["models"]) == set(cfg["quant"]["configs"])
    base, _ = tiny_model.load_model(tiny_model_dir)
    batch = {
        "input_ids": torch.tensor([[5, 9, 17, 33, 2, 8, 40, 11]]),
        "attention_mask": torch.ones(1, 8, dtype=torch.long),
    }
    ref = Q.logits(base, batch)
    for name, info in meta["models"].items():
        d = out / info["dir"]
        assert {"config.json", "model.safetensors", "tokenizer.json", Q.MODELOPT_FILE, Q.SUMMARY_FILE} <= {
            p.name for p in d.iterdir()
        }
        summary = json.loads((d / Q.SUMMARY_FILE).read_text())
        assert summary["config"] == name and summary["num_quantized_modules"] == info["num_quantized_modules"] > 0
        assert summary["nvfp4_cpu_emulation"] == (info["format"] == "nvfp4")
        assert 0 < info["deviation"]["rel_logit_error"] < 0.2
        plain, _ = tiny_model.load_model(d)  # a plain HF load: fake-quantized weights, no activation quant
        restored, _, _ = Q.load_quantized(d)
        assert len(Q.quantizer_layout(restored)["input"]) == info["num_input_quantizers"]
        p, r = Q.logits(plain, batch), Q.logits(restored, batch)
        assert not torch.equal(p, ref) and not torch.equal(r, p)  # weights and activations both quantized
        assert ((r - ref).norm() / ref.norm()).item() < 0.2
        sd_plain, sd_base = plain.state_dict(), base.state_dict()
        changed = {k for k in sd_base if not torch.equal(sd_plain[k], sd_base[k])}
        assert changed and all(re.search(r"experts", k) for k in changed), changed
    assert json.loads((out / Q.SUMMARY_FILE).read_text())["configs"] == cfg["quant"]["configs"]
