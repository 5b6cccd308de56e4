"""Parameter, FLOP, per-GPU memory and GPU-hour estimates for a ``HybridArch``.

Pure Python on purpose: the CLI's dry-run plan calls this, so importing it must cost nothing (no
torch, no numpy). Every number comes from the per-layer formulas below, which mirror the modules of
HF transformers' ``NemotronHForCausalLM`` / Megatron-Core's hybrid model one weight at a time (the
tests check them against the real HF module tree for several configs and for the full model).

Per-layer weights (H hidden, bias-free linears, RMSNorm weights only):
  every layer      pre-norm                      H
  M  Mamba-2       in_proj H*(2*d_in + 2*G*N + nh), conv1d conv_dim*(K+1) (weight + bias),
                   dt_bias + A_log + D  3*nh, gated norm d_in, out_proj d_in*H
                   with d_in = nh*P, conv_dim = d_in + 2*G*N
  *  attention     qkv H*(heads + 2*groups)*kv, o heads*kv*H
  E  latent MoE    router E*H, latent projections 2*H*L, experts E*2*ffn*L (squared ReLU: up and
                   down only), shared expert 2*H*ffn_shared (works in H, not L)
  -  dense MLP     2*H*ffn
  model            input embedding V*H, output head V*H (untied), final norm H
  MTP (not in the total)  enorm + hnorm 2H, eh_proj 2H*H, one shared ``mtp_pattern`` block, final
                   norm H; the output head is the main model's.

Published-count convention: the published 120.6B total / 12.7B active for Nemotron 3 Super are
reproduced (to 0.1B) when the MoE router gate weights (E*H per MoE layer, 83.9M in all) are left out;
counting every stored tensor gives 120.67B / 12.77B. NVIDIA does not state its counting rule, so
``ParamCount`` keeps both: ``total``/``active`` follow the published convention and ``stored_total``/
``stored_active`` add the routers back (that is what ``sum(p.numel())`` on the HF model returns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from nemotron.errors import UserError
from nemotron.model.arch import HybridArch

GIB = 1024**3
MAMBA_CHUNK_SIZE = 128
"""Mamba-2 SSD chunk length (Megatron and HF default); only enters the scan FLOPs and state memory."""


# --------------------------------------------------------------------------------------------------
# Parameters


def mamba_layer_params(a: HybridArch) -> dict[str, int]:
    """Weights of one Mamba-2 layer, by tensor group."""
    h, d_in, nh = a.hidden_size, a.mamba_d_inner, a.mamba_num_heads
    conv_dim = a.mamba_conv_dim
    return {
        "norm": h,
        "in_proj": h * (d_in + conv_dim + nh),  # z, xBC, dt
        "conv1d": conv_dim * a.mamba_conv_kernel + conv_dim,
        "ssm_vectors": 3 * nh,  # dt_bias, A_log, D
        "gated_norm": d_in,
        "out_proj": d_in * h,
    }


def attention_layer_params(a: HybridArch) -> dict[str, int]:
    """Weights of one self-attention layer (GQA, no biases, no positional weights)."""
    h, kv = a.hidden_size, a.kv_channels
    q = a.num_attention_heads * kv
    return {"norm": h, "qkv": h * (q + 2 * a.num_query_groups * kv), "o_proj": q * h}


def moe_layer_params(a: HybridArch, experts: int | None = None) -> dict[str, int]:
    """Weights of one (latent) MoE layer; ``experts`` counts only that many routed experts (top-k)."""
    h, n = a.hidden_size, a.num_moe_experts
    e = n if experts is None else experts
    out = {
        "norm": h,
        "router": n * h,
        "latent_proj": 2 * h * a.moe_latent_size if a.moe_latent_size else 0,
        "routed_experts": e * 2 * a.moe_ffn_hidden_size * a.expert_io_size,
        "shared_expert": 2 * h * a.moe_shared_expert_intermediate_size,
    }
    return out


def mlp_layer_params(a: HybridArch) -> dict[str, int]:
    """Weights of one dense squared-ReLU MLP layer (``-``)."""
    return {"norm": a.hidden_size, "mlp": 2 * a.hidden_size * a.ffn_hidden_size}


def layer_params(a: HybridArch, symbol: str, active: bool = False) -> dict[str, int]:
    """Weights of one layer of kind ``symbol``; ``active`` keeps only the top-k routed experts."""
    if symbol == "M":
        return mamba_layer_params(a)
    if symbol == "*":
        return attention_layer_params(a)
    if symbol == "E":
        return moe_layer_params(a, a.moe_router_topk if active else None)
    if symbol == "-":
        return mlp_layer_params(a)
    raise ValueError(f"unknown layer symbol {symbol!r}")


def mtp_params(a: HybridArch, active: bool = False) -> int:
    """Weights of the MTP module: one block shared by all ``mtp_num_layers`` passes (0 when off)."""
    if not a.mtp_num_layers:
        return 0
    h = a.hidden_size
    block = sum(sum(layer_params(a, s, active).values()) for s in a.mtp_pattern)
    return 2 * h + 2 * h * h + block + h


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts. ``total``/``active`` use the published convention (MoE router gates left out,
    MTP left out); ``embedding`` is input embedding + output head; ``by_block`` sums every stored
    main-stack tensor by kind (``mamba``, ``attention``, ``moe_router``, ``moe_latent_proj``,
    ``moe_routed_experts``, ``moe_shared_expert``, ``moe_norm``, ``mlp``, ``embedding``, ``output``,
    ``final_norm``); ``mtp`` is the (weight-shared) MTP module."""

    total: int
    active: int
    embedding: int
    mtp: int
    by_block: dict[str, int] = field(default_factory=dict)
    router: int = 0

    @property
    def stored_total(self) -> int:
        """Every main-stack weight, as ``sum(p.numel())`` over the HF model (no MTP)."""
        return self.total + self.router

    @property
    def stored_active(self) -> int:
        """Weights one token touches, routers included (every router runs for every token)."""
        return self.active + self.router

    @property
    def total_with_mtp(self) -> int:
        return self.total + self.mtp

    def summary(self) -> str:
        if self.total < 1e9:  # tiny models: millions read better than "0.0B"
            return f"{self.total / 1e6:.2f}M total, {self.active / 1e6:.2f}M active (+{self.mtp / 1e6:.2f}M MTP)"
        return (
            f"{self.total / 1e9:.1f}B total, {self.active / 1e9:.1f}B active "
            f"(+{self.mtp / 1e9:.1f}B MTP; {self.stored_total / 1e9:.2f}B / "
            f"{self.stored_active / 1e9:.2f}B counting router gates)"
        )


def count_params(a: HybridArch) -> ParamCount:
    """Count weights from the per-layer formulas (see the module docstring)."""
    h, v = a.hidden_size, a.vocab_size
    by: dict[str, int] = {}

    def add(key: str, n: int) -> None:
        if n:
            by[key] = by.get(key, 0) + n

    active_experts = 0
    for s in a.hybrid_pattern:
        if s == "E":
            moe = moe_layer_params(a)
            add("moe_norm", moe["norm"])
            add("moe_router", moe["router"])
            add("moe_latent_proj", moe["latent_proj"])
            add("moe_routed_experts", moe["routed_experts"])
            add("moe_shared_expert", moe["shared_expert"])
            active_experts += moe_layer_params(a, a.moe_router_topk)["routed_experts"]
        else:
            add(LAYER_KIND[s], sum(layer_params(a, s).values()))
    add("embedding", v * h)
    add("output", v * h if a.untie_embeddings else 0)
    add("final_norm", h)

    stored = sum(by.values())
    router = by.get("moe_router", 0)
    stored_active = stored - by.get("moe_routed_experts", 0) + active_experts
    return ParamCount(
        total=stored - router,
        active=stored_active - router,
        embedding=by["embedding"] + by.get("output", 0),
        mtp=mtp_params(a),
        by_block=by,
        router=router,
    )


LAYER_KIND = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


# --------------------------------------------------------------------------------------------------
# FLOPs


@dataclass(frozen=True)
class FlopEstimate:
    """Training FLOPs per token (forward + backward = 3x forward), split by where they come from.

    ``matmul`` = 6 x the active weights that take part in a matrix multiply (routers and the output
    head included; input embedding lookup, norms, conv and SSM vectors excluded). ``attention`` =
    QK^T and AV with causal masking (mean context (s+1)/2). ``ssm`` = Mamba-2 depthwise conv + SSD scan
    (chunked: intra-chunk C.B^T and its product with X, chunk states, state read-out). ``mtp`` = the
    same three terms for every MTP pass (each pass also runs the shared output head).
    """

    matmul: float
    attention: float
    ssm: float
    mtp: float

    @property
    def total(self) -> float:
        return self.matmul + self.attention + self.ssm + self.mtp


def _matmul_weights(a: HybridArch, symbol: str) -> int:
    p = layer_params(a, symbol, active=True)
    skip = {"norm", "conv1d", "ssm_vectors", "gated_norm"}
    return sum(n for k, n in p.items() if k not in skip)


def _attention_fwd_flops(a: HybridArch, seq_length: int) -> float:
    q = a.num_attention_heads * a.kv_channels
    return 4.0 * q * (seq_length + 1) / 2  # QK^T + AV, 2 FLOPs per MAC, causal mean context


def _ssm_fwd_flops(a: HybridArch) -> float:
    nh, p, n, g, q = (
        a.mamba_num_heads,
        a.mamba_head_dim,
        a.mamba_state_dim,
        a.mamba_num_groups,
        MAMBA_CHUNK_SIZE,
    )
    conv = 2.0 * a.mamba_conv_dim * a.mamba_conv_kernel
    intra_chunk = 2.0 * g * q * n + 2.0 * nh * q * p
    states = 4.0 * nh * p * n  # chunk state accumulation + read-out
    return conv + intra_chunk + states


def _stack_flops(a: HybridArch, pattern: str, seq_length: int) -> tuple[float, float, float]:
    mm = sum(6.0 * _matmul_weights(a, s) for s in pattern)
    att = 3.0 * pattern.count("*") * _attention_fwd_flops(a, seq_length)
    ssm = 3.0 * pattern.count("M") * _ssm_fwd_flops(a)
    return mm, att, ssm


def flops_per_token(a: HybridArch, seq_length: int, include_mtp: bool = True) -> FlopEstimate:
    """Training FLOPs per token at ``seq_length`` (see ``FlopEstimate`` for what is counted)."""
    if seq_length <= 0:
        raise UserError(f"seq_length must be positive, got {seq_length}")
    head = a.vocab_size * a.hidden_size
    mm, att, ssm = _stack_flops(a, a.hybrid_pattern, seq_length)
    mm += 6.0 * head
    mtp = 0.0
    if include_mtp and a.mtp_num_layers:
        b_mm, b_att, b_ssm = _stack_flops(a, a.mtp_pattern, seq_length)
        eh_proj = 2 * a.hidden_size * a.hidden_size
        mtp = a.mtp_num_layers * (b_mm + b_att + b_ssm + 6.0 * (eh_proj + head))
    return FlopEstimate(matmul=mm, attention=att, ssm=ssm, mtp=mtp)


# --------------------------------------------------------------------------------------------------
# Hardware


@dataclass(frozen=True)
class GpuSpec:
    """Dense (no structured sparsity) tensor-core peak per precision, and usable memory."""

    name: str
    peak_tflops: Mapping[str, float]
    memory_gib: float


GPUS: dict[str, GpuSpec] = {
    # NVIDIA spec sheets, dense; memory as nvidia-smi reports it (183359 MiB, 81559 MiB, 143771 MiB).
    "B200": GpuSpec("B200", {"bf16": 2250.0, "fp8": 4500.0, "nvfp4": 9000.0}, 179.0),
    "H100": GpuSpec("H100", {"bf16": 989.0, "fp8": 1979.0}, 79.6),
    "H200": GpuSpec("H200", {"bf16": 989.0, "fp8": 1979.0}, 140.4),
}

PRECISIONS = ("bf16", "fp8", "nvfp4")

DEFAULT_MFU = {"bf16": 0.35, "fp8": 0.30, "nvfp4": 0.20}
"""Planning MFU against the *given precision's* peak. Lower for FP8/NVFP4 because only the GEMMs get
faster: the Mamba scan, routing, all-to-all and the layers kept in BF16 do not, so the achieved
fraction of the low-precision peak drops. Assumptions, not measurements: override with ``mfu=``."""


def gpu_spec(gpu: str) -> GpuSpec:
    try:
        return GPUS[gpu.upper()]
    except KeyError:
        raise UserError(f"unknown GPU type {gpu!r}", hint=f"known: {', '.join(GPUS)}") from None


def _check_precision(precision: str) -> str:
    p = precision.lower()
    if p not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}", hint=f"known: {', '.join(PRECISIONS)}")
    return p


@dataclass(frozen=True)
class GpuHours:
    tokens: int
    flops_per_token: float
    total_flops: float
    gpu: str
    precision: str
    peak_tflops: float
    mfu: float
    num_gpus: int
    gpu_hours: float

    @property
    def wall_clock_hours(self) -> float:
        return self.gpu_hours / self.num_gpus

    def summary(self) -> str:
        return (
            f"{self.total_flops:.3g} FLOPs = {self.gpu_hours:,.0f} {self.gpu} GPU-hours "
            f"({self.wall_clock_hours:,.1f} h on {self.num_gpus} GPUs; {self.precision} peak "
            f"{self.peak_tflops:.0f} TFLOPS at MFU {self.mfu:.2f})"
        )


def gpu_hours(
    a: HybridArch,
    tokens: int,
    num_gpus: int,
    gpu: str = "B200",
    precision: str = "bf16",
    mfu: float | None = None,
    seq_length: int = 8192,
    include_mtp: bool = True,
) -> GpuHours:
    """GPU-hours to train on ``tokens`` tokens: FLOPs / (peak x MFU). MFU defaults to ``DEFAULT_MFU``."""
    spec = gpu_spec(gpu)
    p = _check_precision(precision)
    if p not in spec.peak_tflops:
        raise UserError(f"{spec.name} has no {p} tensor cores", hint=f"use {', '.join(spec.peak_tflops)}")
    if tokens <= 0 or num_gpus <= 0:
        raise UserError(f"tokens and num_gpus must be positive (got {tokens}, {num_gpus})")
    m = DEFAULT_MFU[p] if mfu is None else mfu
    if not 0 < m <= 1:
        raise UserError(f"mfu must be in (0, 1], got {m}")
    per_token = flops_per_token(a, seq_length, include_mtp).total
    total = per_token * tokens
    peak = spec.peak_tflops[p]
    hours = total / (peak * 1e12 * m) / 3600.0
    return GpuHours(tokens, per_token, total, spec.name, p, peak, m, num_gpus, hours)


# --------------------------------------------------------------------------------------------------
# Memory

WEIGHT_BYTES = {"bf16": 2.0, "fp8": 2.0 + 1.0, "nvfp4": 2.0 + 0.5625}
"""BF16 model weights, plus for FP8/NVFP4 the cached quantized copy Transformer Engine keeps for the
GEMMs (NVFP4: 4 bits + one FP8 scale per 16 values)."""
GEMM_INPUT_BYTES = {"bf16": 2.0, "fp8": 1.0, "nvfp4": 0.5625}
"""Bytes per saved GEMM input: TE keeps the quantized input for the backward pass."""
GRAD_BYTES = 4.0  # fp32 main-grad buffers (Megatron accumulates/reduces BF16 grads in fp32)
ADAM_BYTES = 12.0  # fp32 master weight + Adam m + v
OPTIMIZERS = ("adam distributed", "adam")
RECOMPUTE = ("none", "selective", "full")


@dataclass(frozen=True)
class Parallelism:
    """Megatron parallel sizes. ``expert_data`` is derived: world / (expert * expert_tensor * pipeline)."""

    tensor: int
    pipeline: int
    expert: int
    context: int
    data: int
    expert_tensor: int = 1
    sequence_parallel: bool = True

    @property
    def world(self) -> int:
        return self.tensor * self.pipeline * self.context * self.data

    @property
    def expert_data(self) -> int:
        return self.world // (self.expert * self.expert_tensor * self.pipeline)

    @classmethod
    def from_dict(cls, parallel: Mapping[str, object], num_gpus: int | None = None) -> Parallelism:
        """From a config ``parallel:`` section; ``data`` may be left out when ``num_gpus`` is given."""
        known = {"tensor", "pipeline", "expert", "context", "data", "expert_tensor", "sequence_parallel"}
        unknown = sorted(set(parallel) - known)
        if unknown:
            raise UserError(f"unknown parallel key(s): {', '.join(unknown)}", hint=f"valid: {sorted(known)}")
        sizes: dict[str, int] = {}
        for key in ("tensor", "pipeline", "expert", "context", "expert_tensor"):
            value = parallel.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"parallel.{key} must be a positive integer, got {value!r}")
            sizes[key] = value
        model_par = sizes["tensor"] * sizes["pipeline"] * sizes["context"]
        data = parallel.get("data")
        if data is None:
            if num_gpus is None:
                raise UserError("parallel.data is not set and the GPU count is unknown")
            if num_gpus % model_par:
                raise UserError(f"{num_gpus} GPUs are not a multiple of tensor x pipeline x context = {model_par}")
            data = num_gpus // model_par
        if not isinstance(data, int) or isinstance(data, bool) or data < 1:
            raise UserError(f"parallel.data must be a positive integer, got {data!r}")
        if num_gpus is not None and data * model_par != num_gpus:
            raise UserError(f"tensor x pipeline x context x data = {data * model_par}, not {num_gpus} GPUs")
        sp = parallel.get("sequence_parallel", sizes["tensor"] > 1)
        p = cls(data=data, sequence_parallel=bool(sp), **sizes)
        if p.world % (p.expert * p.expert_tensor * p.pipeline):
            raise UserError(
                f"expert x expert_tensor x pipeline = {p.expert * p.expert_tensor * p.pipeline} must "
                f"divide the {p.world} GPUs"
            )
        return p


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU memory in GiB on the most loaded pipeline stage."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    overhead: float
    params_per_gpu: int
    pipeline_stage: int

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.overhead

    def fits(self, gpu: str) -> bool:
        return self.total <= gpu_spec(gpu).memory_gib

    def summary(self) -> str:
        return (
            f"{self.total:.1f} GiB/GPU = weights {self.weights:.1f} + grads {self.grads:.1f} + "
            f"optimizer {self.optimizer:.1f} + activations {self.activations:.1f} + "
            f"overhead {self.overhead:.1f} ({self.params_per_gpu / 1e9:.2f}B params/GPU)"
        )


def _stages(a: HybridArch, pp: int) -> list[str]:
    """Split the pattern into ``pp`` contiguous stages as evenly as possible (earlier stages longer)."""
    if pp > a.num_layers:
        raise UserError(f"parallel.pipeline ({pp}) exceeds model.num_layers ({a.num_layers})")
    base, extra = divmod(a.num_layers, pp)
    out, start = [], 0
    for i in range(pp):
        n = base + (1 if i < extra else 0)
        out.append(a.hybrid_pattern[start : start + n])
        start += n
    return out


@dataclass
class _Shard:
    """Weights on one GPU, split by the group that shards their optimizer state."""

    dense: float = 0.0  # distributed-optimizer sharded over data x context
    expert: float = 0.0  # sharded over the expert-data-parallel group


def _layer_shard(a: HybridArch, s: str, p: Parallelism) -> _Shard:
    """One layer's weights on one GPU.

    TP shards Mamba (in/out proj, conv, heads, gated norm), attention and the shared expert / dense MLP;
    norms, the router and the latent projections are replicated across TP (Megatron builds the latent
    projections as ``duplicated``). Routed experts are split over EP, and over expert-TP inside each.
    """
    w = layer_params(a, s)
    tp = p.tensor
    if s == "E":
        replicated = w["norm"] + w["router"] + w["latent_proj"]
        return _Shard(
            dense=replicated + w["shared_expert"] / tp,
            expert=w["routed_experts"] / (p.expert * p.expert_tensor),
        )
    return _Shard(dense=w["norm"] + (sum(w.values()) - w["norm"]) / tp)


def _activation_bytes_per_token(a: HybridArch, s: str, p: Parallelism, precision: str, recompute: str) -> float:
    """Bytes saved for backward per token of the local micro-batch, for one layer.

    H-wide tensors are split over TP only with sequence parallelism; head/channel-split tensors always
    are. GEMM inputs are saved quantized (``GEMM_INPUT_BYTES``), everything else in BF16 (router
    scores and SSM chunk states in fp32). With balanced routing each GPU processes top-k copies of
    its own tokens. ``selective`` drops what Megatron's ``layernorm`` + ``moe_act`` recompute drops
    (norm outputs, expert activation outputs); ``full`` keeps only each layer's input.
    """
    h, tp = a.hidden_size, p.tensor
    sp = tp if p.sequence_parallel else 1
    g = GEMM_INPUT_BYTES[precision]
    sel = recompute == "selective"
    if recompute == "full":
        return 2.0 * h / sp
    norm_out = 0.0 if sel else g * h / sp
    if s == "M":
        d_in, nh, conv = a.mamba_d_inner, a.mamba_num_heads, a.mamba_conv_dim
        states = 4.0 * nh * a.mamba_head_dim * a.mamba_state_dim / MAMBA_CHUNK_SIZE
        split = 2.0 * (d_in + conv) + 4.0 * nh + 2.0 * conv + 2.0 * d_in + states + g * d_in
        return 2.0 * h / sp + norm_out + split / tp
    if s == "*":
        q = a.num_attention_heads * a.kv_channels
        kv = 2 * a.num_query_groups * a.kv_channels
        split = 2.0 * (q + kv) + 2.0 * q + 4.0 * a.num_attention_heads + g * q
        return 2.0 * h / sp + norm_out + split / tp
    if s == "-":
        f = a.ffn_hidden_size
        act = 0.0 if sel else g * f
        return 2.0 * h / sp + norm_out + (2.0 * f + act) / tp
    # MoE
    k, io, f, sh = (
        a.moe_router_topk,
        a.expert_io_size,
        a.moe_ffn_hidden_size,
        a.moe_shared_expert_intermediate_size,
    )
    lat = a.moe_latent_size or 0
    router = 4.0 * h + 8.0 * a.num_moe_experts  # fp32 router input, logits + scores
    latent_in = 0.0 if sel or not lat else g * h  # fc1_latent_proj input (a norm output)
    shared_in = 0.0 if sel or not sh else g * h
    act = 0.0 if sel else g * f
    routed = k * (g * io + (2.0 * f + act) / p.expert_tensor + 2.0 * io)  # fc1 in, fc1 out, act, fc2 out
    combine = g * lat  # fc2_latent_proj input
    shared = 2.0 * sh + (0.0 if sel else g * sh)
    per_sp = 2.0 * h + router + latent_in + shared_in + routed + combine
    return per_sp / sp + shared / tp


def _logits_bytes_per_token(a: HybridArch, p: Parallelism, precision: str) -> float:
    """Final norm, output-head input, and the BF16 logits + fp32 softmax of the vocab-parallel loss."""
    sp = p.tensor if p.sequence_parallel else 1
    return (2.0 + GEMM_INPUT_BYTES[precision]) * a.hidden_size / sp + 6.0 * a.vocab_size / p.tensor


def memory_per_gpu(
    a: HybridArch,
    parallel: Mapping[str, object],
    precision: str = "bf16",
    micro_batch_size: int = 1,
    seq_length: int = 8192,
    optimizer: str = "adam distributed",
    recompute: str = "none",
    num_gpus: int | None = None,
    include_mtp: bool = True,
    overhead_gib: float = 4.0,
    trainable_fraction: float = 1.0,
) -> MemoryEstimate:
    """Training memory per GPU on the most loaded pipeline stage (Megatron-style sharding).

    Sharding: routed experts over EP (and expert-TP); everything else over TP (norms, router and
    latent projections replicated); layers split evenly over PP, the input embedding on the first
    stage, output head + final norm + MTP on the last. Weights ``WEIGHT_BYTES``, fp32 grads
    (4 B/param, full per rank), Adam 12 B/param divided, with the distributed optimizer, over
    data x context for dense weights and over the expert-data-parallel group for experts. Activations:
    one micro-batch of ``micro_batch_size x seq_length / context`` tokens per layer, times the
    micro-batches in flight under 1F1B (``pipeline - stage``). ``overhead_gib`` covers the CUDA
    context, NCCL/all-to-all buffers and allocator fragmentation.

    ``trainable_fraction`` < 1 models PEFT (LoRA): the base weights stay (frozen, no grads, no Adam
    state); the adapters add that fraction of the parameters as weights with their own fp32 grads and
    Adam state. Activations are unchanged: the backward pass still runs through every frozen layer.
    """
    prec = _check_precision(precision)
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}", hint=f"known: {', '.join(OPTIMIZERS)}")
    if recompute not in RECOMPUTE:
        raise UserError(f"unknown recompute mode {recompute!r}", hint=f"known: {', '.join(RECOMPUTE)}")
    if micro_batch_size < 1 or seq_length < 1:
        raise UserError("micro_batch_size and seq_length must be positive")
    p = Parallelism.from_dict(parallel, num_gpus)
    if a.count("E") and a.num_moe_experts % p.expert:
        raise UserError(f"parallel.expert ({p.expert}) must divide model.num_moe_experts ({a.num_moe_experts})")
    if seq_length % p.context:
        raise UserError(f"parallel.context ({p.context}) must divide seq_length ({seq_length})")

    tokens = micro_batch_size * seq_length / p.context
    stages = _stages(a, p.pipeline)
    best: MemoryEstimate | None = None
    for i, pattern in enumerate(stages):
        shard = _Shard()
        act_per_token = 0.0
        for s in pattern:
            part = _layer_shard(a, s, p)
            shard.dense += part.dense
            shard.expert += part.expert
            act_per_token += _activation_bytes_per_token(a, s, p, prec, recompute)
        if i == 0:
            shard.dense += a.vocab_size * a.hidden_size / p.tensor
            act_per_token += 2.0 * a.hidden_size / (p.tensor if p.sequence_parallel else 1)
        if i == len(stages) - 1:
            head = a.vocab_size * a.hidden_size if a.untie_embeddings or p.pipeline > 1 else 0
            shard.dense += head / p.tensor + a.hidden_size
            act_per_token += _logits_bytes_per_token(a, p, prec)
            if include_mtp and a.mtp_num_layers:
                h = a.hidden_size
                shard.dense += 3 * h + 2 * h * h / p.tensor
                for s in a.mtp_pattern:
                    part = _layer_shard(a, s, p)
                    shard.dense += part.dense
                    shard.expert += part.expert
                per_pass = sum(_activation_bytes_per_token(a, s, p, prec, recompute) for s in a.mtp_pattern)
                per_pass += (2.0 * 2 + GEMM_INPUT_BYTES[prec] * 2) * h  # norms + eh_proj input
                per_pass += _logits_bytes_per_token(a, p, prec)
                act_per_token += a.mtp_num_layers * per_pass
        in_flight = p.pipeline - i
        working_set = 0.0
        if recompute == "full":
            # Only layer inputs are kept; one layer's full working set is rebuilt at a time.
            working_set = max(_activation_bytes_per_token(a, s, p, prec, "none") for s in pattern)
        params = shard.dense + shard.expert
        opt_div_dense = p.data * p.context if optimizer == "adam distributed" else 1
        opt_div_expert = p.expert_data if optimizer == "adam distributed" else 1
        frac = trainable_fraction
        adapters = params * frac if frac < 1 else 0.0
        est = MemoryEstimate(
            weights=(params * WEIGHT_BYTES[prec] + adapters * 2) / GIB,
            grads=params * frac * GRAD_BYTES / GIB,
            optimizer=frac * (shard.dense / opt_div_dense + shard.expert / opt_div_expert) * ADAM_BYTES / GIB,
            activations=(act_per_token * in_flight + working_set) * tokens / GIB,
            overhead=overhead_gib,
            params_per_gpu=math.ceil(params),
            pipeline_stage=i,
        )
        if best is None or est.total > best.total:
            best = est
    assert best is not None
    return best
