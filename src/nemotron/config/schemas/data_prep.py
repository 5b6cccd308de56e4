"""Schemas for the three data-prep stages (pretrain bin/idx, SFT packed Parquet, RL JSONL).

They share the keys other stages and scripts drive: ``data.inputs`` (paths/globs or ``{path, weight}``),
``tokenizer.path``, ``workers`` and the common ``output_dir``. Everything that changes the bytes of
an output shard is part of the shard plan hash (see ``nemotron.data_prep.plan``); thresholds such as
``data.max_bad_fraction`` are not, so raising one and rerunning reuses every finished shard.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from nemotron.config.schemas.common import Resources, StageConfig, Strict


class InputSpec(Strict):
    """One dataset of the blend: a file, a directory or a glob, with an optional blend weight."""

    path: str = Field(min_length=1)
    weight: PositiveFloat | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _coerce_inputs(value: Any) -> Any:
    """Accept ``a.jsonl``, ``[a.jsonl, b/*.jsonl]`` and ``[{path: a.jsonl, weight: 0.3}, ...]``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return [{"path": item} if isinstance(item, str) else item for item in value]
    return value


class DataSection(Strict):
    """Keys shared by every data-prep stage's ``data`` section."""

    inputs: list[InputSpec] = Field(min_length=1)
    max_bad_fraction: float = Field(0.01, ge=0, le=1)
    valid_fraction: float = Field(0.01, ge=0, lt=1)
    shard_size_mb: PositiveFloat = 256.0

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        return _coerce_inputs(value)

    @model_validator(mode="after")
    def _weights_all_or_none(self) -> DataSection:
        given = [spec.weight is not None for spec in self.inputs]
        if any(given) and not all(given):
            raise ValueError("data.inputs: give a weight for every input or for none")
        return self


class PretrainDataSection(DataSection):
    text_field: str = "text"
    test_fraction: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _splits(self) -> PretrainDataSection:
        if self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("data.valid_fraction + data.test_fraction must leave something for train")
        return self


class SftInputSpec(InputSpec):
    """An SFT dataset; ``chat_template_kwargs`` apply to its rows (row-level kwargs win)."""

    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)


class SftDataSection(DataSection):
    inputs: list[SftInputSpec] = Field(min_length=1)  # type: ignore[assignment]
    messages_field: str = "messages"  # OpenAI messages; ShareGPT `conversations` (from/value) is read too
    tools_field: str = "tools"  # per-row tool definitions, passed to the template as `tools`
    kwargs_field: str = "chat_template_kwargs"  # per-row template kwargs (e.g. enable_thinking)
    shard_size_mb: PositiveFloat = 64.0

    @model_validator(mode="after")
    def _no_weights(self) -> SftDataSection:
        if any(spec.weight is not None for spec in self.inputs):
            raise ValueError("data.inputs: weights apply to pretrain blends only; list SFT inputs without weight")
        return self


class RlInputSpec(InputSpec):
    """An RL dataset; ``agent`` is the NeMo-Gym agent (environment) its rows go to (``agent_ref.name``)."""

    agent: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


GYM_PROMPT_TEMPLATE = "{prompt}"


class RlDataSection(DataSection):
    """``format: prompt_answer`` writes ``{id, prompt, answer}`` rows for NeMo-RL's math environment;
    ``format: nemo_gym`` writes NeMo-Gym rows (``responses_create_params.input`` messages, ``agent_ref``,
    verifier fields), passing through rows that already are NeMo-Gym rows."""

    inputs: list[RlInputSpec] = Field(min_length=1)
    format: Literal["prompt_answer", "nemo_gym"] = "prompt_answer"
    prompt_template: str = GYM_PROMPT_TEMPLATE  # nemo_gym, built rows: the user message; must contain {prompt}
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    id_field: str | None = None  # null = a content hash
    keep_fields: list[str] = Field(default_factory=list)  # extra source fields copied to the output records
    valid_fraction: float = Field(0.05, ge=0, lt=1)
    shard_size_mb: PositiveFloat = 64.0

    @model_validator(mode="after")
    def _no_weights(self) -> RlDataSection:
        if any(spec.weight is not None for spec in self.inputs):
            raise ValueError("data.inputs: weights apply to pretrain blends only; list RL inputs without weight")
        if "{prompt}" not in self.prompt_template:
            raise ValueError("data.prompt_template must contain {prompt}")
        if self.format == "prompt_answer" and any(spec.agent for spec in self.inputs):
            raise ValueError("data.inputs[].agent is a NeMo-Gym setting; set data.format=nemo_gym")
        return self


class TokenizerSection(Strict):
    """Any HF ``tokenizer.json`` or tiktoken rank file, given by path (a directory holding tokenizer.json works)."""

    path: str = Field(min_length=1)
    kind: Literal["auto", "hf", "tiktoken"] = "auto"
    eod: str | None = None  # end-of-document token; null = eos of tokenizer_config.json or a well-known name
    pattern: str | None = None  # tiktoken only: pre-tokenizer regex (null = GPT-2's)
    special_tokens: list[str] = Field(default_factory=lambda: ["<|endoftext|>"])  # tiktoken only: ids after ranks
    add_special_tokens: bool = True  # hf only: apply the post-processor (BOS/EOS), as Megatron's HF tokenizer does


class ChatTemplate(Strict):
    """A per-turn template rendered once per conversation (linear in turns, no prefix re-rendering).

    Loss is computed on the ``{content}`` of turns whose role is in ``train_roles`` plus the
    ``end_of_turn`` text that directly follows it; everything else is masked out.
    """

    turn: str = "<|im_start|>{role}\n{content}<|im_end|>\n"
    end_of_turn: str = "<|im_end|>"
    bos: str = ""  # rendered once before the first turn
    roles: list[str] = Field(default_factory=lambda: ["system", "user", "assistant", "tool"])
    train_roles: list[str] = Field(default_factory=lambda: ["assistant"])

    @model_validator(mode="after")
    def _shape(self) -> ChatTemplate:
        if self.turn.count("{content}") != 1:
            raise ValueError("tokenizer.chat_template.turn must contain {content} exactly once")
        suffix = self.turn.split("{content}", 1)[1]
        if not suffix.startswith(self.end_of_turn):
            raise ValueError("tokenizer.chat_template.turn must continue with end_of_turn right after {content}")
        if "{role}" in suffix:
            raise ValueError("tokenizer.chat_template.turn: put {role} before {content}")
        unknown = set(self.train_roles) - set(self.roles)
        if unknown:
            raise ValueError(f"tokenizer.chat_template.train_roles not in roles: {sorted(unknown)}")
        return self


class SftTokenizerSection(TokenizerSection):
    """``chat_template``: ``auto`` = the tokenizer's own (``chat_template.jinja`` or ``tokenizer_config.json``
    next to ``tokenizer.json``), a path to a Jinja file, or ``per_turn`` = the ``per_turn`` fallback."""

    special_tokens: list[str] = Field(default_factory=lambda: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    add_special_tokens: bool = False
    chat_template: str = Field("auto", min_length=1)
    per_turn: ChatTemplate = Field(default_factory=ChatTemplate)

    @model_validator(mode="before")
    @classmethod
    def _old_per_turn_mapping(cls, value: Any) -> Any:
        """Configs written before the Jinja path gave ``chat_template: {turn: ...}``: that is ``per_turn``."""
        if isinstance(value, dict) and isinstance(value.get("chat_template"), dict):
            value = dict(value)
            value["per_turn"] = value.pop("chat_template")
            value["chat_template"] = "per_turn"
        return value


class ChatSection(Strict):
    """How conversations become samples (see ``nemotron.data_prep.chat``)."""

    template_kwargs: dict[str, Any] = Field(default_factory=dict)  # every row (dataset and row kwargs win)
    # split: one sample per user turn when a conversation has reasoning (the reference recipe's way);
    # last: one sample training only the turns after the last user turn.
    multi_turn_reasoning: Literal["split", "last"] = "split"
    # The reference recipe renders a row with enable_thinking = (the row has reasoning) unless kwargs set it.
    thinking_from_data: bool = True


class PackSection(Strict):
    size: PositiveInt = 4096
    truncate: bool = True  # false = drop conversations longer than size (counted either way)


def _cpu_resources() -> Resources:
    return Resources(nodes=1, gpus_per_node=0, ntasks_per_node=1)


class _DataPrepConfig(StageConfig):
    resources: Resources = Field(default_factory=_cpu_resources)
    workers: NonNegativeInt = 0  # local processes per task; 0 = every CPU this task may use


class DataPrepPretrainConfig(_DataPrepConfig):
    """``nemotron super3 data prep pretrain``: text -> Megatron .bin/.idx shards + blend.json."""

    data: PretrainDataSection
    tokenizer: TokenizerSection


class DataPrepSftConfig(_DataPrepConfig):
    """``nemotron super3 data prep sft``: chats -> template -> loss-masked tokens -> packed Parquet."""

    data: SftDataSection
    tokenizer: SftTokenizerSection
    chat: ChatSection = Field(default_factory=ChatSection)
    pack: PackSection = Field(default_factory=PackSection)


class DataPrepRlConfig(_DataPrepConfig):
    """``nemotron super3 data prep rl``: prompt/answer records -> train/val JSONL + manifest.json."""

    data: RlDataSection


SCHEMAS: dict[str, type[StageConfig]] = {
    "data_prep.pretrain": DataPrepPretrainConfig,
    "data_prep.sft": DataPrepSftConfig,
    "data_prep.rl": DataPrepRlConfig,
}
