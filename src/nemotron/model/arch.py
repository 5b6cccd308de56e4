"""Nemotron 3 Super architecture numbers as one frozen value.

Why a separate dataclass (and not the pydantic ``ModelSection``): the calculator runs inside the CLI's
dry-run plan, where pydantic must not be imported at module top level, and it also runs on the nodes
against the resolved ``model:`` dict of train.yaml. Field names are exactly the config ``model:`` keys
(Megatron names), so ``HybridArch.from_config(cfg["model"])`` needs no translation table.

Layer symbols in ``hybrid_pattern`` (Megatron's hybrid override pattern):
``M`` Mamba-2 mixer, ``E`` (latent) MoE, ``*`` self-attention (no RoPE), ``-`` dense MLP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from nemotron.errors import UserError

LAYER_SYMBOLS = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}

SUPER3_PATTERN = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME"


@dataclass(frozen=True)
class HybridArch:
    """Architecture of a hybrid Mamba-2 / latent-MoE / attention model (Nemotron-H family).

    ``moe_latent_size=None`` means plain MoE (experts work in ``hidden_size``, no latent projections);
    ``moe_shared_expert_intermediate_size=0`` means no shared expert. ``ffn_hidden_size`` is only used
    by dense ``-`` layers (not a Super3 key; it stays 0 when the pattern has none). ``mtp_pattern`` is
    the one multi-token-prediction block whose weights all ``mtp_num_layers`` passes share.
    """

    num_layers: int
    hybrid_pattern: str
    hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    kv_channels: int
    mamba_num_heads: int
    mamba_head_dim: int
    mamba_state_dim: int
    mamba_num_groups: int
    mamba_conv_kernel: int
    num_moe_experts: int
    moe_router_topk: int
    moe_ffn_hidden_size: int
    moe_latent_size: int | None
    moe_shared_expert_intermediate_size: int
    vocab_size: int
    untie_embeddings: bool
    mtp_num_layers: int
    ffn_hidden_size: int = 0
    mtp_pattern: str = "*E"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("hybrid_pattern", "mtp_pattern"):
                if not isinstance(value, str):
                    raise UserError(f"model.{f.name} must be a string, got {value!r}")
            elif f.name == "untie_embeddings":
                if not isinstance(value, bool):
                    raise UserError(f"model.untie_embeddings must be true or false, got {value!r}")
            elif f.name == "moe_latent_size" and value is None:
                continue
            elif not isinstance(value, int) or isinstance(value, bool):
                raise UserError(f"model.{f.name} must be an integer, got {value!r}")
            elif value < 0 or (value == 0 and f.name not in _MAY_BE_ZERO):
                raise UserError(f"model.{f.name} must be positive, got {value}")
        self._check_pattern("hybrid_pattern", self.hybrid_pattern)
        if len(self.hybrid_pattern) != self.num_layers:
            raise UserError(
                f"model.hybrid_pattern has {len(self.hybrid_pattern)} layers but model.num_layers is {self.num_layers}",
                hint="make num_layers equal to the pattern length",
            )
        if self.mtp_num_layers:
            self._check_pattern("mtp_pattern", self.mtp_pattern)
        if self.moe_router_topk > self.num_moe_experts:
            raise UserError(
                f"model.moe_router_topk ({self.moe_router_topk}) exceeds model.num_moe_experts ({self.num_moe_experts})"
            )
        if self.num_attention_heads % self.num_query_groups:
            raise UserError(
                f"model.num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"model.num_query_groups ({self.num_query_groups})"
            )
        if self.mamba_num_heads % self.mamba_num_groups:
            raise UserError(
                f"model.mamba_num_heads ({self.mamba_num_heads}) must be a multiple of "
                f"model.mamba_num_groups ({self.mamba_num_groups})"
            )
        if "-" in self.hybrid_pattern + (self.mtp_pattern if self.mtp_num_layers else "") and (
            self.ffn_hidden_size <= 0
        ):
            raise UserError(
                "model.hybrid_pattern has dense '-' layers but model.ffn_hidden_size is not set",
                hint="set model.ffn_hidden_size",
            )

    @staticmethod
    def _check_pattern(name: str, pattern: str) -> None:
        bad = sorted(set(pattern) - set(LAYER_SYMBOLS))
        if bad or not pattern:
            raise UserError(
                f"model.{name} may only contain M, E, * and - (found {''.join(bad) or 'an empty pattern'})",
                hint="M = Mamba-2, E = MoE, * = attention, - = dense MLP",
            )

    @classmethod
    def from_config(cls, model: Mapping[str, Any]) -> HybridArch:
        """Build from a config ``model:`` section; unknown or missing keys are user errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(model) - known)
        if unknown:
            raise UserError(
                f"unknown model key(s): {', '.join(unknown)}",
                hint=f"valid keys: {', '.join(sorted(known))}",
            )
        optional = {"ffn_hidden_size", "mtp_pattern"}
        missing = [f.name for f in fields(cls) if f.name not in model and f.name not in optional]
        if missing:
            raise UserError(f"model section is missing key(s): {', '.join(missing)}")
        return cls(**dict(model))

    def to_config(self) -> dict[str, Any]:
        """The ``model:`` section for this architecture (round-trips through ``from_config``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # Derived sizes, named as in the Mamba-2 / Megatron code so formulas read like the modules.
    @property
    def mamba_d_inner(self) -> int:
        return self.mamba_num_heads * self.mamba_head_dim

    @property
    def mamba_conv_dim(self) -> int:
        """Channels through the causal conv: x plus the grouped B and C projections."""
        return self.mamba_d_inner + 2 * self.mamba_num_groups * self.mamba_state_dim

    @property
    def expert_io_size(self) -> int:
        """Width the routed experts read and write: the latent size when set, else hidden."""
        return self.moe_latent_size or self.hidden_size

    def count(self, symbol: str) -> int:
        """Number of main-stack layers of one kind (``'M'``, ``'E'``, ``'*'`` or ``'-'``)."""
        return self.hybrid_pattern.count(symbol)


_MAY_BE_ZERO = {"moe_shared_expert_intermediate_size", "mtp_num_layers", "ffn_hidden_size"}

SUPER3 = HybridArch(
    num_layers=88,
    hybrid_pattern=SUPER3_PATTERN,
    hidden_size=4096,
    num_attention_heads=32,
    num_query_groups=2,
    kv_channels=128,
    mamba_num_heads=128,
    mamba_head_dim=64,
    mamba_state_dim=128,
    mamba_num_groups=8,
    mamba_conv_kernel=4,
    num_moe_experts=512,
    moe_router_topk=22,
    moe_ffn_hidden_size=2688,
    moe_latent_size=1024,
    moe_shared_expert_intermediate_size=5376,
    vocab_size=131072,
    untie_embeddings=True,
    mtp_num_layers=2,
)
"""Nemotron 3 Super (120.6B total, 12.7B active as published)."""
