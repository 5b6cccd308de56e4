"""CPU emulation of NVFP4 fake quantization, plugged into ModelOpt as a quantizer backend.

Why: ModelOpt's NVFP4 quantizers (``num_bits=(2, 1)``, ``block_sizes={-1: 16, "type": "dynamic",
"scale_bits": (4, 3)}``) fake-quantize through ``dynamic_block_quant``, which asserts
``amax.is_cuda`` and then needs a Triton or CUDA kernel. On a CPU machine ``mtq.quantize`` with
``NVFP4_DEFAULT_CFG`` therefore fails. This module does the same arithmetic in plain torch and
registers it with ``modelopt...register_quant_backend``; :func:`emulate_on_cpu` sets that backend on
the NVFP4 entries of a ModelOpt config, so everything else (which modules get quantizers, max
calibration of the per-tensor amax, ``fold_weight``, ``mto`` save/restore) stays ModelOpt's.

The NVFP4 format (what a Blackwell GPU computes on):
- values are FP4 E2M1: magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6} and a sign bit;
- every 16 consecutive elements along the last dim share one scale stored as FP8 E4M3;
- one FP32 per-tensor scale ``s2 = amax / (6 * 448)`` makes the FP8 block scales fit their range.

Per block ``b`` with ``bmax = max |x_b|``:
``scale_b = fp8_e4m3(clamp(bmax / (6 * s2), 2**-9, 448))`` (a zero block gets 1.0),
``q = round_e2m1(x / (scale_b * s2))`` (round to nearest, ties to the even code, saturating at 6),
``x_hat = q * scale_b * s2``.
This is exactly ModelOpt's CPU-capable reference ``NVFP4QTensor.quantize`` + ``dequantize`` (the
export/deployment numerics); the tests check bit equality against it. One deliberate difference from
ModelOpt's GPU Triton fake-quant kernel: that kernel replaces block scales below an absolute 1e-5 with
1.0 (zeroing such blocks) and lets scales underflow below 2**-9; we follow the deployment format
instead, which only matters for blocks whose amax is < ~6e-5 (tiny activations of an untrained model).
"""

from __future__ import annotations

import copy
from typing import Any

E2M1_MAX = 6.0
E4M3_MAX = 448.0
E4M3_MIN_SCALE = 2.0**-9  # smallest positive FP8 E4M3 (subnormal) value; block scales never underflow
BLOCK_SIZE = 16
# Name under which the emulation is registered with ModelOpt (``QuantizerAttributeConfig.backend``).
BACKEND = "nemotron_nvfp4_cpu"

# Rounding onto the E2M1 magnitude grid: (upper bound, value, bound inclusive?). A value exactly on a
# midpoint goes to the neighbour whose E2M1 mantissa bit is 0 (round half to even), e.g. 0.25 -> 0,
# 0.75 -> 1, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4. Anything above 5 saturates to 6.
_E2M1_STEPS: tuple[tuple[float, float, bool], ...] = (
    (0.25, 0.0, True),
    (0.75, 0.5, False),
    (1.25, 1.0, True),
    (1.75, 1.5, False),
    (2.5, 2.0, True),
    (3.5, 3.0, False),
    (5.0, 4.0, True),
)
E2M1_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def round_to_e2m1(x):
    """Round every element to the nearest signed E2M1 value (ties to even, saturating at +-6)."""
    import torch

    mag = x.abs()
    out = torch.full_like(mag, E2M1_MAX)
    # Walk the steps from the top so the smallest matching bucket wins.
    for bound, value, inclusive in reversed(_E2M1_STEPS):
        inside = mag <= bound if inclusive else mag < bound
        out = torch.where(inside, torch.full_like(mag, value), out)
    return torch.where(x < 0, -out, out)


def per_tensor_scale(amax):
    """The FP32 second-level scale ``s2 = amax / (6 * 448)``."""
    return amax.float() / (E2M1_MAX * E4M3_MAX)


def nvfp4_quantize(x, amax=None, block_size: int = BLOCK_SIZE):
    """Quantize ``x`` to NVFP4 parts: ``(codes, block_scales, s2)``.

    ``codes`` are the E2M1 values (float32, on the grid, shape of ``x`` padded to a multiple of
    ``block_size`` along the last dim), ``block_scales`` the FP8 E4M3 block scales
    (``torch.float8_e4m3fn``, one per block), ``s2`` the FP32 per-tensor scale. ``amax`` is the
    per-tensor absolute max (calibrated for activations); default: ``max |x|``.
    """
    import torch

    xf = x.float()
    if amax is None:
        amax = xf.abs().amax()
    s2 = per_tensor_scale(torch.as_tensor(amax, device=xf.device).reshape(()))
    n = xf.shape[-1]
    pad = (-n) % block_size
    if pad:
        xf = torch.nn.functional.pad(xf, (0, pad))
    blocks = xf.reshape(*xf.shape[:-1], -1, block_size)
    bmax = blocks.abs().amax(dim=-1)
    scale = bmax / (E2M1_MAX * s2)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    scale_fp8 = scale.clamp(min=E4M3_MIN_SCALE, max=E4M3_MAX).to(torch.float8_e4m3fn)
    codes = round_to_e2m1(blocks / (scale_fp8.float() * s2).unsqueeze(-1))
    return codes.reshape(xf.shape), scale_fp8, s2


def nvfp4_dequantize(codes, block_scales, s2, shape=None, dtype=None, block_size: int = BLOCK_SIZE):
    """Inverse of :func:`nvfp4_quantize`: ``codes * (block_scale * s2)``, cropped to ``shape``."""
    blocks = codes.reshape(*codes.shape[:-1], -1, block_size)
    out = (blocks * (block_scales.float() * s2).unsqueeze(-1)).reshape(codes.shape)
    if shape is not None:
        out = out[..., : shape[-1]]
    return out.to(dtype) if dtype is not None else out


def nvfp4_fake_quant(x, amax=None, block_size: int = BLOCK_SIZE):
    """NVFP4 quantize-dequantize of ``x`` (same shape and dtype), with a straight-through gradient."""
    codes, scales, s2 = nvfp4_quantize(x.detach(), amax, block_size)
    xq = nvfp4_dequantize(codes, scales, s2, shape=x.shape, dtype=x.dtype, block_size=block_size)
    return x + (xq - x).detach() if x.requires_grad else xq


def _backend_entrypoint(inputs, quantizer):
    """ModelOpt backend hook: fake-quantize ``inputs`` the way ``quantizer`` is configured.

    The per-tensor amax is the quantizer's calibrated ``_amax`` when it has one (activations after
    max calibration, weights after their first pass), else ``max |inputs|`` (dynamic, as ModelOpt).
    """
    block_sizes = quantizer.block_sizes or {}
    block_size = block_sizes.get(-1) or block_sizes.get(inputs.dim() - 1)
    if block_size is None or not _is_e2m1(quantizer.num_bits) or not _is_e4m3(block_sizes.get("scale_bits")):
        raise ValueError(
            f"{BACKEND} emulates NVFP4 only (E2M1 values, E4M3 block scales); got num_bits="
            f"{quantizer.num_bits} block_sizes={block_sizes}"
        )
    amax = getattr(quantizer, "_amax", None)
    return nvfp4_fake_quant(inputs, amax=amax, block_size=int(block_size))


def register_backend() -> str:
    """Register the emulation with ModelOpt (idempotent); returns the backend name."""
    from modelopt.torch.quantization.nn.modules.tensor_quantizer import (
        is_registered_quant_backend,
        register_quant_backend,
    )

    if not is_registered_quant_backend(BACKEND):
        register_quant_backend(BACKEND, _backend_entrypoint)
    return BACKEND


def _is_e2m1(bits: Any) -> bool:
    return bits == "e2m1" or (isinstance(bits, (tuple, list)) and tuple(bits) == (2, 1))


def _is_e4m3(bits: Any) -> bool:
    return bits == "e4m3" or (isinstance(bits, (tuple, list)) and tuple(bits) == (4, 3))


def _is_nvfp4_attrs(cfg: Any) -> bool:
    """True for a quantizer attribute dict describing dynamic-block NVFP4."""
    if not isinstance(cfg, dict):
        return False
    block = cfg.get("block_sizes") or {}
    return _is_e2m1(cfg.get("num_bits")) and block.get("type") == "dynamic" and _is_e4m3(block.get("scale_bits"))


def emulate_on_cpu(quant_cfg: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of a ModelOpt quantize config whose NVFP4 quantizer entries use the CPU emulation.

    Only the ``backend`` field is added; ``num_bits``/``block_sizes`` stay, so the quantizers still
    describe themselves as NVFP4 (summaries, export checks). Returns ``(config, entries changed)``.
    """
    register_backend()
    cfg = copy.deepcopy(quant_cfg)
    changed = 0
    for entry in cfg.get("quant_cfg", []):
        attrs = entry.get("cfg") if isinstance(entry, dict) else None
        for item in attrs if isinstance(attrs, list) else [attrs]:
            if _is_nvfp4_attrs(item):
                item["backend"] = BACKEND
                changed += 1
    return cfg, changed
