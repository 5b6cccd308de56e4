"""The stage registry: the single description of every stage of the Super3 recipe.

CLI commands, ``--help`` panels, dry-run plans and ``pipe`` are all generated from ``STAGES``, so a
new stage is one entry here plus a config directory and a node script — never a copied command file.

Artifact kinds are the contract between stages: a stage's input names a kind, and ``pipe`` wires it
to the nearest earlier stage whose output has that kind. ``tests`` check that every input kind is
produced by some stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.errors import UserError

FAMILY = "super3"

TRAIN_CONTAINER = "nvcr.io/nvidia/nemo:26.02.nemotron_3_super"
RL_CONTAINER = "nvcr.io/nvidia/nemo-rl:v0.5.0.nemotron_3_super"  # pinned in nemotron.upstream.pins


@dataclass(frozen=True)
class Port:
    """One input or output slot of a stage: ``slot`` is the config key under ``run.``, ``kind`` the artifact type."""

    slot: str
    kind: str
    optional: bool = False
    external: bool = False  # normally fed from outside the recipe (`artifacts add`), so configs may leave it empty


@dataclass(frozen=True)
class Stage:
    """One runnable stage.

    ``name`` is the canonical id used in configs, job directories and ``pipe --from/--only``
    (``data_prep.pretrain``, ``pretrain``, ``rl.rlvr``); ``command`` is its CLI path.
    """

    name: str
    command: tuple[str, ...]
    help: str
    script: str
    inputs: tuple[Port, ...]
    output: Port
    launcher: str = "python"  # python | torchrun | ray
    container: str = TRAIN_CONTAINER

    @property
    def config_dir(self) -> str:
        """Directory of this stage's YAML configs, relative to ``configs/``."""
        return "/".join((FAMILY, *self.name.split(".")))

    @property
    def display(self) -> str:
        """The stage as the user types it: ``data prep pretrain``, ``rl rlvr``."""
        return " ".join(self.command)


def _rl(sub: str, help_text: str, model_from: str) -> Stage:
    return Stage(
        name=f"rl.{sub}",
        command=("rl", sub),
        help=help_text + f" Consumes the {model_from}.",
        script="rl.py",
        inputs=(Port("model", "model"), Port("data", "rl-data")),
        output=Port("model", "model"),
        launcher="ray",
        container=RL_CONTAINER,
    )


STAGES: tuple[Stage, ...] = (
    Stage(
        name="data_prep.pretrain",
        command=("data", "prep", "pretrain"),
        help="Tokenize raw JSONL/Parquet into Megatron bin/idx shards plus blend.json.",
        script="data_prep.py",
        inputs=(),
        output=Port("data", "pretrain-data"),
    ),
    Stage(
        name="data_prep.sft",
        command=("data", "prep", "sft"),
        help="Render chats, mask non-assistant tokens and pack them into Parquet for SFT.",
        script="data_prep.py",
        inputs=(),
        output=Port("data", "sft-data"),
    ),
    Stage(
        name="data_prep.rl",
        command=("data", "prep", "rl"),
        help="Turn prompt/answer records into RL train/val JSONL with a manifest.",
        script="data_prep.py",
        inputs=(),
        output=Port("data", "rl-data"),
    ),
    Stage(
        name="model.import",
        command=("model", "import"),
        help="Convert a Hugging Face checkpoint (e.g. the released model) to a Megatron checkpoint.",
        script="convert.py",
        inputs=(Port("model", "model", external=True),),
        output=Port("model", "model"),
    ),
    Stage(
        name="model.export",
        command=("model", "export"),
        help="Convert a Megatron checkpoint to a Hugging Face checkpoint.",
        script="convert.py",
        inputs=(Port("model", "model"),),
        output=Port("model", "model"),
    ),
    Stage(
        name="pretrain",
        command=("pretrain",),
        help="Pretrain (phase1, phase2, long_context) with Megatron-Bridge.",
        script="pretrain.py",
        inputs=(Port("data", "pretrain-data"), Port("model", "model", optional=True)),
        output=Port("model", "model"),
        launcher="torchrun",
    ),
    Stage(
        name="sft",
        command=("sft",),
        help="Supervised fine-tuning (full or LoRA) with Megatron-Bridge, exported to HF.",
        script="sft.py",
        inputs=(Port("model", "model"), Port("data", "sft-data")),
        output=Port("model", "model"),
        launcher="torchrun",
    ),
    _rl("rlvr", "GRPO with verifiable rewards, pass 1 of 3 (NeMo-RL + NeMo-Gym).", "SFT model"),
    _rl("rlvr2", "GRPO with verifiable rewards, pass 2 of 3 (NeMo-RL + NeMo-Gym).", "RLVR pass-1 model"),
    _rl("rlvr3", "GRPO with verifiable rewards, pass 3 of 3 (NeMo-RL + NeMo-Gym).", "RLVR pass-2 model"),
    _rl("swe1", "GRPO on software-engineering tasks, stage 1 (NeMo-RL).", "RLVR pass-3 model"),
    _rl("swe2", "GRPO on software-engineering tasks, stage 2 (NeMo-RL).", "SWE1 model"),
    _rl("rlhf", "GRPO against a reward model (NeMo-RL).", "SWE2 model"),
    Stage(
        name="quantize",
        command=("quantize",),
        help="FP8 / NVFP4 post-training quantization with ModelOpt, exported to HF.",
        script="quantize.py",
        inputs=(Port("model", "model"), Port("calib", "sft-data", optional=True)),
        output=Port("model", "quantized-model"),
        launcher="torchrun",
    ),
    Stage(
        name="eval",
        command=("eval",),
        help="Evaluate a model with NeMo-Evaluator (vLLM deployment + benchmark tasks).",
        script="eval.py",
        inputs=(
            Port("model", "model"),
            Port("quantized", "quantized-model", optional=True),
            # earlier stages' models, evaluated side by side; wired only explicitly (pipe step `inputs:`)
            Port("pretrain_model", "model", optional=True, external=True),
            Port("sft_model", "model", optional=True, external=True),
        ),
        output=Port("results", "eval-results"),
    ),
)

BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
ARTIFACT_KINDS: frozenset[str] = frozenset(stage.output.kind for stage in STAGES)


def get_stage(name: str) -> Stage:
    """Look a stage up by canonical name (``rl.rlvr``) or CLI spelling (``rl rlvr``, ``rl-rlvr``)."""
    key = name.strip().replace(" ", ".").replace("-", ".")
    key = key.replace("data.prep.", "data_prep.")
    if key in BY_NAME:
        return BY_NAME[key]
    known = ", ".join(BY_NAME)
    raise UserError(f"unknown stage '{name}'", hint=f"known stages: {known}")
