"""Tiny-backend SFT: full fine-tuning of the tiny NemotronH on the packed chat Parquet, with loss
only on ``loss_mask`` tokens (assistant turns) and no attention across packed sequence boundaries.

Why unpack instead of training on packed rows: HF NemotronH has no per-sequence reset for its Mamba
state or attention (no ``cu_seqlens`` path on CPU), so a packed row would leak context between chats.
Each row is split at ``seq_start_id`` and the sequences are right-padded into batches instead.
"""

from __future__ import annotations

import pathlib
from typing import Any

from nemotron.data_prep.packed_format import require_label_alignment
from nemotron.errors import UserError

from . import data as tiny_data
from . import model as tiny_model
from . import training
from .pretrain import _sections, finish, save_dirs

HELDOUT_SEQUENCES = 64  # sequences kept aside to measure masked-token loss before/after


def split_heldout(packs: list[list[tiny_data.SftSequence]], n: int, seed: int):
    """Deterministically set aside packs holding about ``n`` sequences (at most a fifth of the packs)
    for the before/after measurement when the data has no valid split."""
    import numpy as np

    order = np.random.default_rng([seed, 7]).permutation(len(packs))
    held: list[tiny_data.SftSequence] = []
    used = 0
    for i in order[: max(0, len(packs) // 5)]:
        if len(held) >= n:
            break
        held += packs[int(i)]
        used += 1
    rest = [packs[int(i)] for i in order[used:]]
    return held, rest


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Fine-tune ``inputs["model"]`` on ``inputs["data"]``; write ``output_dir/hf`` and metrics.json.

    Returns artifact metadata incl. ``masked_loss_before`` / ``masked_loss_after`` on the same
    held-out sequences.
    """
    tiny_model.set_threads()
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train, _, n_micro = _sections(train_cfg)
    seed = int(train_cfg.get("seed", 1234))
    micro = int(train.get("micro_batch_size", 1))
    peft = (train_cfg.get("peft") or {}).get("method", "none")
    if peft != "none":
        raise UserError(
            f"the tiny backend does full fine-tuning only (peft.method={peft})", hint="set peft.method=none"
        )
    for slot in ("model", "data"):
        if inputs.get(slot) is None:
            raise UserError(f"sft needs a {slot} input (run.{slot})")

    require_label_alignment(getattr(inputs["data"], "metadata", None))
    model, tokenizer = tiny_model.load_model(inputs["model"].path)
    pad_id = tokenizer.pad_token_id
    max_len = int(train.get("seq_length", 4096))
    eos = tokenizer.eos_token_id  # Megatron-Bridge zeroes the loss where the input token is its tokenizer's EOS
    packs = tiny_data.read_sft_packs(inputs["data"].path, max_length=max_len, eos_id=eos)
    valid = tiny_data.read_sft_sequences(inputs["data"].path, max_length=max_len, split="valid", eos_id=eos)
    top = max(int(s.input_ids.max()) for s in [*(s for p in packs for s in p), *valid])
    if top >= model.config.vocab_size:
        raise UserError(
            f"SFT data has token id {top} but the model vocabulary is {model.config.vocab_size}",
            hint="tokenize the chats with the model's tokenizer",
        )
    if valid:  # data prep's valid split is the held-out set
        held, train_packs = valid[:HELDOUT_SEQUENCES], packs
    else:
        held, train_packs = split_heldout(packs, HELDOUT_SEQUENCES, seed)
    if not held:  # too little data to hold any out: measure on training sequences instead
        train_packs = packs
        held = [s for p in packs for s in p][:HELDOUT_SEQUENCES]
    heldout = tiny_data.chunk_by_length(held, pad_id)
    batches = tiny_data.SftBatches(train_packs, pad_id, seed)
    n_train = sum(len(p) for p in train_packs)
    eval_iters = int(train.get("eval_iters", 0))
    valid_batches = heldout[: max(1, eval_iters)] if eval_iters > 0 else []

    def micro_batches(step: int) -> list[dict]:
        return [chunk for j in range(n_micro) for chunk in batches.batch(step * n_micro + j, micro)]

    before = training.evaluate(model, heldout)
    training.log(
        f"sft: {n_train} train sequences in {len(train_packs)} packs, {len(held)} held-out, masked loss before {before:.4f}, "
        f"{train['train_iters']} iters x {n_micro * micro} packs"
    )
    save_dir, load_dir = save_dirs(train_cfg, output_dir, inputs.get("model"))
    state = training.train_loop(
        model=model,
        train_cfg=train_cfg,
        micro_batches=micro_batches,
        valid_batches=valid_batches,
        save_dir=save_dir,
        load_dir=load_dir,
    )
    after = training.evaluate(model, heldout)
    accuracy = answer_accuracy(model, tokenizer, addition_prompts())
    training.log(f"sft: masked loss on held-out sequences {before:.4f} -> {after:.4f}")
    training.log(f"sft: greedy accuracy on 'What is A + B?' (100 prompts) {accuracy:.2f}")
    extra = {
        "addition_accuracy": round(accuracy, 4),
        "masked_loss_before": round(before, 4),
        "masked_loss_after": round(after, 4),
        "train_sequences": n_train,
        "train_packs": len(train_packs),
        "heldout_sequences": len(held),
    }
    return finish(model, tokenizer, state, output_dir, extra)


def addition_prompts() -> list[tuple[str, str]]:
    """The 100 single-digit additions the RL stage asks, as (question, answer)."""
    return [(f"What is {a} + {b}?", str(a + b)) for a in range(10) for b in range(10)]


def answer_accuracy(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], max_new_tokens: int = 4) -> float:
    """Share of questions whose greedy answer (chat template, up to ``<|im_end|>``) equals the answer.

    Tells whether GRPO can start from a non-zero reward.
    """
    import torch

    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q, _ in pairs
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=False)
    correct = 0
    for text, (_, answer) in zip(texts, pairs, strict=True):
        reply = text.split(tiny_model.IM_END)[0].split(tiny_model.EOS_TOKEN)[0].strip()
        correct += reply == answer
    return correct / len(pairs)
