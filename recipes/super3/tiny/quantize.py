"""Tiny-backend quantize stage: ModelOpt FP8 / NVFP4 fake-quant PTQ of the tiny NemotronH on CPU.

For every name in ``quant.configs`` the stage copies the input model, inserts ModelOpt quantizers with
``mtq.quantize`` using ModelOpt's own preset of that name, calibrates them (``max`` algorithm) with a
forward loop over calibration batches, folds the weight fake-quant into the weights and saves
``output_dir/<config name>/`` (see :func:`save_quantized` for exactly what is written).

The four recipes are ModelOpt's presets ``mtq.MAMBA_MOE_{FP8,NVFP4}_{CONSERVATIVE,AGGRESSIVE}_CFG``
(the same names Megatron-Bridge's quantize takes on GPU). Each is the format's default config
(``mtq.FP8_DEFAULT_CFG``: FP8 E4M3 per-tensor weights and inputs; ``mtq.NVFP4_DEFAULT_CFG``: NVFP4
weights and inputs, 16-element blocks) plus "stay in high precision" patterns; ``tests/tiny/
test_quantize.py`` checks that each preset equals the default config followed by exactly the entries
listed here. Patterns are fnmatch'ed against quantizer names (``<module>.weight_quantizer``,
``<module>.input_quantizer``; per-expert ``experts.up_proj_weight_quantizers.3`` is also matched as
``experts.up_proj_weight_quantizer``).

Kept unquantized by the default configs already (both variants), checked against the printed NemotronH
module tree (``model.embeddings``, ``model.layers.N.mixer.{in_proj,conv1d,out_proj}`` for Mamba,
``mixer.{gate,experts,shared_experts.{up,down}_proj,fc1_latent_proj,fc2_latent_proj}`` for MoE,
``mixer.{q,k,v,o}_proj`` for attention, ``lm_head``):
  ``*lm_head*`` (output layer), ``*mixer.conv1d*`` (Mamba depthwise conv), ``*router*``/``*mlp.gate.*``
  (routers; NemotronH's ``mixer.gate`` is a ``NemotronHTopkRouter`` computing ``F.linear`` in fp32 on its
  own parameter, so ModelOpt inserts no quantizer there at all) and ``parent_class: nn.Embedding``
  (``model.embeddings``).
Aggressive = default + ``MAMBA_MOE_EXCLUDED`` below: attention ``*q_proj*``, ``*k_proj*``, ``*v_proj*``,
  ``*o_proj*`` (and their Megatron names ``*self_attention.linear_qkv*``/``linear_proj``) and the MoE
  latent projections ``*fc1_latent_proj*``/``*fc2_latent_proj*`` stay high precision. Quantized: the
  routed experts (``experts.up_proj``/``down_proj``, one weight quantizer per expert, shared input
  quantizer), the shared expert (``shared_experts.up_proj``/``down_proj``) and the Mamba ``in_proj``/
  ``out_proj``.
Conservative = aggressive + ``*mixer.in_proj*``, ``*mixer.out_proj*``: the Mamba projections stay high
  precision too, so only routed- and shared-expert linears are quantized.
Why: expert weights are ~all of Super's parameters (512 experts), so quantizing them gives the memory
and bandwidth win; attention, latent projections and Mamba in/out projections are few parameters but
sit on the residual path of every token, where FP8/FP4 error is measured to hurt most (on the tiny
model quantizing Mamba projections too roughly triples the logit error, see the report). Note: this
"aggressive" is ModelOpt's; it keeps attention and latent projections unquantized, i.e. it is *not*
"every linear except router and lm_head".

NVFP4 on CPU: ModelOpt's dynamic block quantization asserts CUDA tensors, so when the model is on CPU
(always, for the tiny backend) the NVFP4 entries get ``backend: nemotron_nvfp4_cpu`` (:mod:`super3.tiny.nvfp4`, a plain-torch emulation
bit-identical to ModelOpt's ``NVFP4QTensor`` reference); a model on a GPU would use ModelOpt's kernels.
The unquantized model is float32 on CPU; the results call it "bf16" after the recipe's baseline.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import time
from dataclasses import dataclass
from typing import Any

from nemotron.artifacts.quantized import quantized_entry
from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from super3.tiny.training import write_sorted_json_atomic

log = get_logger()  # the node logger: its lines reach the job log

TASK_DATA = pathlib.Path(__file__).resolve().parent / "tasks" / "data"
CALIB_FALLBACK = TASK_DATA / "tiny_prose_calib.jsonl"
MODELOPT_FILE = "modelopt_quant.pth"  # mto.save(): quantizer config + state (incl. calibrated amax)
SUMMARY_FILE = "quant_summary.json"

# Stay-in-high-precision patterns ModelOpt's mamba_moe presets add to the format default (both variants).
MAMBA_MOE_EXCLUDED: tuple[str, ...] = (
    "*fc1_latent_proj*",
    "*fc2_latent_proj*",
    "*q_proj*",
    "*k_proj*",
    "*v_proj*",
    "*o_proj*",
    "*self_attention.linear_qkv*",
    "*self_attention.linear_proj*",
)
# ...and the conservative variants on top of that.
CONSERVATIVE_EXCLUDED: tuple[str, ...] = ("*mixer.in_proj*", "*mixer.out_proj*")


@dataclass(frozen=True)
class Recipe:
    """One ``quant.configs`` entry: ModelOpt preset attribute, its base default and exclusions."""

    name: str
    fmt: str  # fp8 | nvfp4
    variant: str  # conservative | aggressive
    preset: str  # attribute of modelopt.torch.quantization
    base: str  # the format's default config it extends

    @property
    def excluded(self) -> tuple[str, ...]:
        extra = CONSERVATIVE_EXCLUDED if self.variant == "conservative" else ()
        return MAMBA_MOE_EXCLUDED + extra


RECIPES: dict[str, Recipe] = {
    f"mamba_moe_{fmt}_{variant}": Recipe(
        name=f"mamba_moe_{fmt}_{variant}",
        fmt=fmt,
        variant=variant,
        preset=f"MAMBA_MOE_{fmt.upper()}_{variant.upper()}_CFG",
        base=f"{fmt.upper()}_DEFAULT_CFG",
    )
    for fmt in ("fp8", "nvfp4")
    for variant in ("conservative", "aggressive")
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown quantization config '{name}'", hint=f"use one of: {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_config(name: str, emulate_nvfp4: bool | None = None) -> tuple[dict[str, Any], bool]:
    """The ModelOpt quantize config for ``name`` and whether the NVFP4 CPU emulation is used.

    ``emulate_nvfp4`` (only NVFP4 recipes are affected) should say whether the model runs on CPU;
    it defaults to "no CUDA available".
    """
    import copy

    import modelopt.torch.quantization as mtq

    recipe = get_recipe(name)
    cfg = copy.deepcopy(getattr(mtq, recipe.preset))
    if emulate_nvfp4 is None:
        import torch

        emulate_nvfp4 = not torch.cuda.is_available()
    if recipe.fmt == "nvfp4" and emulate_nvfp4:
        from super3.tiny import nvfp4

        cfg, changed = nvfp4.emulate_on_cpu(cfg)
        if not changed:
            raise RuntimeError(f"{recipe.preset} has no NVFP4 quantizer entry to emulate (ModelOpt changed?)")
        return cfg, True
    return cfg, False


# --------------------------------------------------------------------------------------------------
# calibration data


def _read_calib_texts(path: pathlib.Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def calibration_batches(
    quant: dict[str, Any], calib: Any, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Right-padded batches ``{input_ids, attention_mask}`` for calibration, plus a description.

    With a ``calib`` artifact (packed SFT Parquet) the packed rows are split back into their sequences
    (``seq_start_id``) and the first ``calib_size`` sequences, each cut to ``calib_seq_length`` tokens,
    are used in file/row order. Without one, the prose calibration paragraphs shipped with the eval
    tasks (never scored by eval) are encoded with the model's tokenizer instead.
    """
    import numpy as np

    from super3.tiny import data

    size, length, bs = int(quant["calib_size"]), int(quant["calib_seq_length"]), int(quant["calib_batch_size"])
    if calib is not None:
        seqs = data.read_sft_sequences(calib.path, max_length=length)[:size]
        source = f"sft-data {calib.path}"
    else:
        eod = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        seqs = []
        for text in _read_calib_texts(CALIB_FALLBACK)[:size]:
            ids = [*tokenizer(text, add_special_tokens=False)["input_ids"], eod][:length]
            seqs.append(data.SftSequence(np.asarray(ids, dtype=np.int64), np.ones(len(ids), dtype=np.int8)))
        source = f"prose {CALIB_FALLBACK.name}"
    if not seqs:
        raise UserError("no calibration sequences", hint="check the calib input or quant.calib_size")
    top = max(int(s.input_ids.max()) for s in seqs if len(s.input_ids))
    if top >= len(tokenizer):
        raise UserError(
            f"calibration data has token id {top} but the model's tokenizer has {len(tokenizer)} tokens",
            hint="calibrate with sft-data prepared with the model's tokenizer",
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = []
    for i in range(0, len(seqs), bs):
        batch = data.collate_sft(seqs[i : i + bs], pad)
        batches.append({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
    info = {
        "source": source,
        "sequences": len(seqs),
        "tokens": int(sum(len(s.input_ids) for s in seqs)),
        "batches": len(batches),
        "batch_size": bs,
        "max_seq_length": length,
    }
    return batches, info


# --------------------------------------------------------------------------------------------------
# quantization


def quantize_model(model: Any, cfg: dict[str, Any], batches: list[dict[str, Any]]) -> Any:
    """``mtq.quantize`` ``model`` in place with a forward loop over ``batches`` (max calibration)."""
    import modelopt.torch.quantization as mtq
    import torch

    def forward_loop(m: Any) -> None:
        with torch.no_grad():
            for batch in batches:
                m(**batch)

    return mtq.quantize(model, cfg, forward_loop=forward_loop)


_PER_EXPERT = re.compile(r"_(weight|input)_quantizers?\.\d+$")


def quantizer_layout(model: Any) -> dict[str, list[str]]:
    """Enabled quantizer names, grouped: ``{"weight": [...], "input": [...], "other": [...]}``."""
    from modelopt.torch.quantization.nn import TensorQuantizer

    out: dict[str, list[str]] = {"weight": [], "input": [], "other": []}
    for name, mod in model.named_modules():
        if isinstance(mod, TensorQuantizer) and mod.is_enabled:
            norm = _PER_EXPERT.sub(r"_\1_quantizer", name)
            kind = (
                "weight"
                if norm.endswith("weight_quantizer")
                else "input"
                if norm.endswith("input_quantizer")
                else "other"
            )
            out[kind].append(name)
    return out


def quantized_modules(layout: dict[str, list[str]]) -> list[str]:
    """Module names that quantize their weights: ``a.b.up_proj`` / ``a.experts.up_proj[3]``."""
    mods = set()
    for name in layout["weight"]:
        m = re.match(r"(.*)\.(\w+)_weight_quantizers\.(\d+)$", name)
        mods.add(f"{m.group(1)}.{m.group(2)}[{m.group(3)}]" if m else name.rsplit(".", 1)[0])
    return sorted(mods)


def logits(model: Any, batch: dict[str, Any]):
    """Float32 logits of ``model`` on ``batch`` (no grad)."""
    import torch

    with torch.no_grad():
        return model(**batch).logits.float()


def output_deviation(ref_logits: Any, q_model: Any, batch: dict[str, Any]) -> dict[str, float]:
    """How far the quantized model's next-token distribution is from the reference logits on ``batch``.

    Over real (unpadded) tokens: relative L2 error of the logits, mean KL(ref || quantized) in nats,
    and top-1 agreement.
    """
    import torch

    ref, out = ref_logits, logits(q_model, batch)
    keep = batch["attention_mask"].bool()
    ref, out = ref[keep], out[keep]
    kl = torch.nn.functional.kl_div(out.log_softmax(-1), ref.log_softmax(-1), log_target=True, reduction="batchmean")
    return {
        "rel_logit_error": float((out - ref).norm() / ref.norm().clamp_min(1e-12)),
        "kl_nats": float(kl),
        "top1_agreement": float((out.argmax(-1) == ref.argmax(-1)).float().mean()),
    }


# --------------------------------------------------------------------------------------------------
# save / load


def save_quantized(q_model: Any, tokenizer: Any, path: pathlib.Path, summary: dict[str, Any]) -> pathlib.Path:
    """Write one quantized model directory atomically (staged beside ``path``, then renamed).

    Contents: an ordinary HF ``save_pretrained`` directory (``config.json``, ``model.safetensors``,
    tokenizer) whose weights are the *fake-quantized* weights (ModelOpt ``fold_weight``: every quantized
    weight holds its FP8/NVFP4 quantize-dequantize value, in float32), so any HF loader gets the quantized
    weights; ``modelopt_quant.pth`` (``mto.save``: the ModelOpt quantizer config and state, including the
    calibrated activation amax), which :func:`load_quantized` restores with ``mto.restore`` so activations
    are fake-quantized again at eval time; and ``quant_summary.json``.
    """
    import modelopt.torch.opt as mto
    import modelopt.torch.quantization as mtq
    from transformers import NemotronHForCausalLM

    from super3.tiny import model as tiny_model

    mtq.fold_weight(q_model)
    plain_state = {k: v for k, v in q_model.state_dict().items() if not re.search(r"_quantizers?(\.|$)", k)}
    plain = NemotronHForCausalLM(q_model.config)
    plain.load_state_dict(plain_state, strict=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tiny_model.save_model(plain, tokenizer, staging)
        mto.save(q_model, str(staging / MODELOPT_FILE))
        write_sorted_json_atomic(staging / SUMMARY_FILE, summary)
        tiny_model.publish_dir(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_quantized(path: str | os.PathLike[str]) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, summary)`` of a directory written by :func:`save_quantized`.

    The model has the folded (quantized) weights and, via ``mto.restore``, ModelOpt's activation
    fake-quant (the NVFP4 CPU emulation is registered first when needed).
    """
    import modelopt.torch.opt as mto

    from super3.tiny import model as tiny_model
    from super3.tiny import nvfp4

    path = pathlib.Path(path)
    model, tokenizer = tiny_model.load_model(path)
    summary_file = path / SUMMARY_FILE
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    state = path / MODELOPT_FILE
    if state.exists():
        nvfp4.register_backend()
        model = mto.restore(model, str(state))
        model.eval()
    return model, tokenizer, summary


# --------------------------------------------------------------------------------------------------
# stage entry


def _quant_section(train_cfg: dict[str, Any]) -> dict[str, Any]:
    quant = {
        "configs": ["mamba_moe_fp8_conservative"],
        "calib_size": 512,
        "calib_seq_length": 4096,
        "calib_batch_size": 1,
    }
    quant.update(train_cfg.get("quant") or {})
    if not quant["configs"]:
        raise UserError("quant.configs is empty", hint=f"list one or more of: {', '.join(RECIPES)}")
    for name in quant["configs"]:
        get_recipe(name)
    return quant


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Quantize ``inputs["model"]`` with every ``quant.configs`` recipe; return the artifact metadata."""
    import copy

    from super3.tiny import model as tiny_model

    started = time.monotonic()
    quant = _quant_section(train_cfg)
    if "model" not in inputs or inputs["model"] is None:
        raise UserError("the quantize stage needs a model input", hint="set run.model to a tiny model artifact")
    tiny_model.set_threads()
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    base, tokenizer = tiny_model.load_model(inputs["model"].path)
    batches, calib_info = calibration_batches(quant, inputs.get("calib"), tokenizer)
    log.info("calibration: %s", calib_info)

    on_cpu = next(base.parameters()).device.type == "cpu"  # the tiny backend: always, even beside a GPU
    ref_logits = logits(base, batches[0])
    models: dict[str, Any] = {}
    for name in quant["configs"]:
        t0 = time.monotonic()
        recipe = get_recipe(name)
        cfg, emulated = recipe_config(name, emulate_nvfp4=on_cpu)
        q_model = quantize_model(copy.deepcopy(base), cfg, batches)
        layout = quantizer_layout(q_model)
        deviation = output_deviation(ref_logits, q_model, batches[0])
        summary = {
            "config": name,
            "format": recipe.fmt,
            "variant": recipe.variant,
            "modelopt_preset": f"mtq.{recipe.preset}",
            "base_config": f"mtq.{recipe.base}",
            "kept_high_precision_patterns": list(recipe.excluded),
            "algorithm": cfg.get("algorithm"),
            "nvfp4_cpu_emulation": emulated,
            "quantized_modules": quantized_modules(layout),
            "num_quantized_modules": len(quantized_modules(layout)),
            "num_weight_quantizers": len(layout["weight"]),
            "num_input_quantizers": len(layout["input"]),
            "deviation_on_calib_batch0": deviation,
            "saved_weights": "fake-quantized (fold_weight), float32",
            "activation_fake_quant": f"restored from {MODELOPT_FILE} by mto.restore",
            "calibration": calib_info,
        }
        save_quantized(q_model, tokenizer, output_dir / name, summary)
        seconds = round(time.monotonic() - t0, 2)
        log.info(
            "%s: %d modules quantized, deviation %s (%.1fs)", name, summary["num_quantized_modules"], deviation, seconds
        )
        # the one quantized-model metadata shape (nemotron.artifacts.quantized), as the megatron backend writes it
        models[name] = quantized_entry(
            name,
            recipe.fmt,
            variant=recipe.variant,
            num_quantized_modules=summary["num_quantized_modules"],
            num_weight_quantizers=summary["num_weight_quantizers"],
            num_input_quantizers=summary["num_input_quantizers"],
            nvfp4_cpu_emulation=emulated,
            deviation=deviation,
            seconds=seconds,
        )
        del q_model

    metadata = {
        "backend": "tiny",
        "configs": list(quant["configs"]),
        "models": models,
        "calibration": calib_info,
        "source_model": str(inputs["model"].path),
        "runtime_s": round(time.monotonic() - started, 2),
    }
    write_sorted_json_atomic(output_dir / SUMMARY_FILE, metadata)
    return metadata
