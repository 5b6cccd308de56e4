"""Schema for ``model import`` (HF -> Megatron) and ``model export`` (Megatron -> HF).

The keys map one-to-one onto the arguments of Megatron-Bridge's conversion examples (v0.4.0
``examples/conversion/convert_checkpoints_multi_gpu.py`` import/export: ``--tp --pp --ep --etp
--torch-dtype --trust-remote-code``, export also ``--hf-model`` as the architecture template,
``--not-strict``, ``--distributed-save``), and of its checks (``hf_megatron_roundtrip_multi_gpu.py``,
``compare_hf_and_megatron/compare.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nemotron.config.schemas.common import StageConfig, Strict
from nemotron.config.schemas.training import ParallelSection


class VerifySection(Strict):
    """Check the converted model before publishing it; the outcome lands in the artifact metadata."""

    enabled: bool = False
    roundtrip: bool = True  # MB hf_megatron_roundtrip_multi_gpu.py: every exported weight allclose to the HF original
    compare_outputs: bool = True  # MB compare.py: next token and logits cosine similarity HF vs Megatron
    prompt: str = "The capital of France is"
    min_cosine: float = Field(0.98, gt=0, le=1)  # compare.py's SIMILARITY_THRESHOLD (v0.4.0)


class ConvertSection(Strict):
    torch_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    trust_remote_code: bool = True  # the released Super HF checkpoint ships its modelling code
    hf_template: str | None = None  # export: HF model id/dir whose config is the template (null: the source's own)
    strict: bool = True  # export: every Megatron weight must map to an HF key (MB --not-strict when false)
    distributed_save: bool = False  # export: MB --distributed-save (each rank writes its shards)
    mb_root: str = "/opt/Megatron-Bridge"  # where the container keeps Megatron-Bridge's examples/ (MB docs)


class ConvertConfig(StageConfig):
    parallel: ParallelSection = Field(default_factory=lambda: ParallelSection(tensor=1, expert=8))
    convert: ConvertSection = Field(default_factory=ConvertSection)
    verify: VerifySection = Field(default_factory=VerifySection)
