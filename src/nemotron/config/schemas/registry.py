"""Which pydantic schema validates which stage's config."""

from __future__ import annotations

from nemotron.config.schemas.common import StageConfig


def schema_for(stage_name: str) -> type[StageConfig]:
    """The schema class for a canonical stage name (``pretrain``, ``rl.rlvr``, ``data_prep.sft``...)."""
    if stage_name.startswith("data_prep."):
        from nemotron.config.schemas.data_prep import SCHEMAS

        return SCHEMAS[stage_name]
    if stage_name.startswith("rl."):
        from nemotron.config.schemas.rl import RlConfig

        return RlConfig
    if stage_name == "pretrain":
        from nemotron.config.schemas.training import PretrainConfig

        return PretrainConfig
    if stage_name == "sft":
        from nemotron.config.schemas.training import SftConfig

        return SftConfig
    if stage_name == "quantize":
        from nemotron.config.schemas.quantize import QuantizeConfig

        return QuantizeConfig
    if stage_name in ("model.import", "model.export"):
        from nemotron.config.schemas.convert import ConvertConfig

        return ConvertConfig
    if stage_name == "eval":
        from nemotron.config.schemas.eval import EvalConfig

        return EvalConfig
    raise KeyError(stage_name)
