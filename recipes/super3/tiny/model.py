"""The tiny backend's model: a Super-shaped HF ``NemotronHForCausalLM`` built from the config's
``model:`` section (Megatron names), plus the load/save helpers every tiny stage shares.

Why one module: pretrain, SFT, RL, quantize and eval all hand the model to each other as a
``save_pretrained`` directory that also carries the tokenizer, so the mapping Megatron-name ->
HF-field and the on-disk layout live in exactly one place.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger

log = get_logger()  # the node logger: its lines reach the job log

# Megatron hybrid-pattern symbol -> HF NemotronH block type.
PATTERN_TO_BLOCK = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}

# The chat format of the tiny pipeline: the shipped template (system, <think>, tool calls; see the file),
# which renders a plain user/assistant chat as `<|im_start|>{role}\n{content}<|im_end|>\n` and ends a
# generation prompt with `<|im_start|>assistant\n`. Data prep renders SFT chats with the same file.
CHAT_TEMPLATE_FILE = pathlib.Path(__file__).resolve().parents[1] / "assets" / "tiny" / "chat_template.jinja"
EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = "<pad>"

# Mamba-2 chunk length of the PyTorch scan. Not a Megatron model field; 32 is ~1.5x faster than HF's 128
# on CPU for the tiny sequence lengths (the intra-chunk work grows with chunk^2).
MAMBA_CHUNK_SIZE = 32


def set_threads(max_threads: int = 2) -> int:
    """Use at most ``max_threads`` torch threads (the CI machine has 2 shared cores).

    Falls back to 1 thread when the machine is already busy (1-min load average >= half the cores):
    with the tiny model's small ops, 2 OpenMP threads competing with other processes measured ~10x
    slower per step than 1 thread, while on an idle machine 2 threads gain less than 1.5x.
    ``NEMOTRON_TINY_THREADS`` overrides the choice.
    """
    import torch

    cores = os.cpu_count() or 1
    forced = os.environ.get("NEMOTRON_TINY_THREADS")
    if forced:
        n = max(1, int(forced))
    else:
        n = max(1, min(max_threads, cores))
        if n > 1 and os.getloadavg()[0] >= cores / 2:
            n = 1
    torch.set_num_threads(n)
    return n


def _section(model_section: Any) -> dict[str, Any]:
    """Accept the validated pydantic section or its plain dict form (train.yaml)."""
    if hasattr(model_section, "model_dump"):
        return model_section.model_dump()
    return dict(model_section)


def build_config(model_section: Any, vocab_size: int | None = None, special_ids: dict[str, int] | None = None):
    """Map the config ``model:`` section (Megatron names) onto a transformers ``NemotronHConfig``.

    ``vocab_size`` (the tokenizer's size) overrides ``model.vocab_size`` when given: the tiny tokenizer
    decides the embedding table. ``special_ids`` may carry ``eos``/``pad``/``bos`` token ids.
    MTP (``mtp_num_layers``) has no HF implementation and is left out; routing is sigmoid top-k with
    normalised weights (as in Super), one shared expert, squared-ReLU experts, no RoPE.
    """
    from transformers import NemotronHConfig

    m = _section(model_section)
    if vocab_size and m.get("vocab_size") and int(vocab_size) != int(m["vocab_size"]):
        log.info(
            "model.vocab_size %s replaced by the tokenizer's %s (the embedding table must fit the tokenizer)",
            m["vocab_size"],
            vocab_size,
        )
    pattern = m.get("hybrid_pattern", "")
    if len(pattern) != m.get("num_layers", len(pattern)):
        raise UserError(
            f"model.hybrid_pattern has {len(pattern)} layers but model.num_layers is {m['num_layers']}",
            hint="make the pattern one symbol (M, E, *, -) per layer",
        )
    bad = sorted(set(pattern) - set(PATTERN_TO_BLOCK))
    if not pattern or bad:
        raise UserError(f"model.hybrid_pattern {pattern!r} is invalid", hint="use only M, E, * and -")
    if not m.get("untie_embeddings", True):
        raise UserError(
            "the tiny backend needs model.untie_embeddings: true",
            hint="HF NemotronH (like Super) keeps separate input and output embeddings",
        )
    if m["moe_shared_expert_intermediate_size"] <= 0 and "E" in pattern:
        raise UserError(
            "the tiny backend needs model.moe_shared_expert_intermediate_size > 0",
            hint="HF NemotronH MoE layers always have one shared expert",
        )
    if m["num_moe_experts"] < 2 and "E" in pattern:
        raise UserError("model.num_moe_experts must be at least 2 for the tiny backend")
    if m["mamba_num_heads"] % m["mamba_num_groups"]:
        raise UserError("model.mamba_num_heads must be a multiple of model.mamba_num_groups")
    if m["num_attention_heads"] % m["num_query_groups"]:
        raise UserError("model.num_attention_heads must be a multiple of model.num_query_groups")
    if m.get("mtp_num_layers", 0):
        log.info("tiny backend: model.mtp_num_layers=%s ignored (HF NemotronH has no MTP)", m["mtp_num_layers"])

    ids = special_ids or {}
    return NemotronHConfig(
        vocab_size=int(vocab_size or m["vocab_size"]),
        hidden_size=m["hidden_size"],
        layers_block_type=[PATTERN_TO_BLOCK[c] for c in pattern],
        tie_word_embeddings=False,
        num_attention_heads=m["num_attention_heads"],
        num_key_value_heads=m["num_query_groups"],
        head_dim=m["kv_channels"],
        max_position_embeddings=8192,  # no RoPE: informational only
        mamba_num_heads=m["mamba_num_heads"],
        mamba_head_dim=m["mamba_head_dim"],
        ssm_state_size=m["mamba_state_dim"],
        n_groups=m["mamba_num_groups"],
        conv_kernel=m["mamba_conv_kernel"],
        chunk_size=MAMBA_CHUNK_SIZE,
        n_routed_experts=m["num_moe_experts"],
        num_experts_per_tok=m["moe_router_topk"],
        moe_intermediate_size=m["moe_ffn_hidden_size"],
        moe_latent_size=m.get("moe_latent_size"),
        moe_shared_expert_intermediate_size=m["moe_shared_expert_intermediate_size"],
        n_shared_experts=1,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        mlp_hidden_act="relu2",
        intermediate_size=m["moe_shared_expert_intermediate_size"],  # used by '-' (dense MLP) layers
        num_nextn_predict_layers=0,
        pad_token_id=ids.get("pad", 0),
        bos_token_id=ids.get("bos"),
        eos_token_id=ids.get("eos"),
        use_cache=True,
    )


def new_model(model_section: Any, seed: int = 0, vocab_size: int | None = None, tokenizer: Any = None):
    """A freshly initialised float32 ``NemotronHForCausalLM`` (deterministic for a given seed).

    Pass the ``tokenizer`` (or its ``vocab_size``) so the embedding table fits it and the special
    token ids are recorded in the config.
    """
    import torch
    from transformers import NemotronHForCausalLM

    special = special_token_ids(tokenizer) if tokenizer is not None else None
    if tokenizer is not None and vocab_size is None:
        vocab_size = len(tokenizer)
    config = build_config(model_section, vocab_size=vocab_size, special_ids=special)
    torch.manual_seed(seed)
    model = NemotronHForCausalLM(config).to(torch.float32)
    _sync_generation_config(model, special)
    return model


def special_token_ids(tokenizer: Any) -> dict[str, int]:
    """eos = ``<|im_end|>`` (a chat turn ends the answer), pad = ``<pad>``, bos = ``<|endoftext|>``."""
    vocab = tokenizer.get_vocab()
    ids: dict[str, int] = {}
    for key, tok in (("eos", IM_END), ("pad", PAD_TOKEN), ("bos", EOS_TOKEN), ("eod", EOS_TOKEN)):
        if tok in vocab:
            ids[key] = vocab[tok]
    return ids


def _sync_generation_config(model: Any, special: dict[str, int] | None) -> None:
    """Stop generation at ``<|im_end|>`` or ``<|endoftext|>``; pad with ``<pad>``."""
    if not special:
        return
    eos = [special[k] for k in ("eos", "eod") if k in special]
    model.config.eos_token_id = eos[0] if eos else None
    model.config.pad_token_id = special.get("pad", model.config.pad_token_id)
    model.config.bos_token_id = special.get("bos")
    gen = model.generation_config
    gen.eos_token_id = eos or None
    gen.pad_token_id = special.get("pad")
    gen.bos_token_id = special.get("bos")


def load_tokenizer(path: str | os.PathLike[str]):
    """A ``PreTrainedTokenizerFast`` from a ``tokenizer.json`` file or a directory holding one.

    Directories written by :func:`save_model` load through ``AutoTokenizer``; a bare ``tokenizer.json``
    (the data-prep asset) gets the tiny special tokens and chat template attached here.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    p = pathlib.Path(path)
    if p.is_dir() and (p / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(str(p))
    else:
        file = p / "tokenizer.json" if p.is_dir() else p
        if not file.exists():
            raise UserError(f"no tokenizer at {p}", hint="expected a tokenizer.json (byte-level BPE)")
        tok = PreTrainedTokenizerFast(tokenizer_file=str(file))
    vocab = tok.get_vocab()
    missing = [t for t in (EOS_TOKEN, IM_START, IM_END, PAD_TOKEN) if t not in vocab]
    if missing:
        raise UserError(f"tokenizer at {p} lacks special tokens {missing}")
    tok.eos_token = IM_END
    tok.pad_token = PAD_TOKEN
    tok.bos_token = EOS_TOKEN
    tok.padding_side = "right"
    if not getattr(tok, "chat_template", None):
        sibling = (p if p.is_dir() else p.parent) / CHAT_TEMPLATE_FILE.name
        tok.chat_template = (sibling if sibling.is_file() else CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    return tok


def save_model(model: Any, tokenizer: Any, path: str | os.PathLike[str]) -> pathlib.Path:
    """``save_pretrained`` model (safetensors) + tokenizer into ``path`` atomically.

    Writes into a temp dir beside ``path`` and renames it in place, so a crash never leaves a
    half-written model where a later stage would pick it up.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sync_generation_config(model, special_token_ids(tokenizer))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def publish_dir(staged: pathlib.Path, path: pathlib.Path) -> None:
    """Rename the fully written directory ``staged`` to ``path``, replacing what is there.

    An existing ``path`` is first moved aside (and deleted only after the rename), so ``path`` is
    always either the old complete directory or the new one, never a mix of both.
    """
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(staged, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, path)


def model_dir(path: str | os.PathLike[str]) -> pathlib.Path:
    """The HF directory inside a model artifact: ``path`` itself, or its ``hf/`` export
    (pretrain/SFT write their final model to ``<output_dir>/hf`` next to checkpoints and metrics)."""
    p = pathlib.Path(path)
    if not (p / "config.json").exists() and (p / "hf" / "config.json").exists():
        return p / "hf"
    return p


def load_model(path: str | os.PathLike[str]):
    """Load ``(model, tokenizer)`` from a model artifact directory (float32, eval mode).

    ``path`` may be the HF directory or an artifact directory holding it as ``hf/``.
    """
    import torch
    from transformers import NemotronHForCausalLM

    p = model_dir(path)
    if not (p / "config.json").exists():
        raise UserError(f"{p} is not a tiny model directory (no config.json)", hint="pass a tiny-*-model artifact")
    model = NemotronHForCausalLM.from_pretrained(str(p), dtype=torch.float32)
    model.eval()
    return model, load_tokenizer(p)


def layer_counts(model_or_config: Any) -> dict[str, int]:
    """How many Mamba / MoE / attention / MLP blocks the model has (used in tests and metadata)."""
    config = getattr(model_or_config, "config", model_or_config)
    counts = {"mamba": 0, "moe": 0, "attention": 0, "mlp": 0}
    names = {"linear_attention": "mamba", "moe": "moe", "full_attention": "attention", "mlp": "mlp"}
    for block in config.layers_block_type:
        counts[names[block]] += 1
    return counts


def param_count(model: Any) -> int:
    """Total number of parameters."""
    return sum(p.numel() for p in model.parameters())
