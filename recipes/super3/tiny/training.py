"""The training loop pretrain and SFT share: LR schedule, grad accumulation, eval, logging,
atomic checkpoints and resume.

Why one loop: the two stages differ only in where batches come from (bin/idx windows vs. unpacked
chats) and which tokens count; checkpoint layout, resume semantics and log format must be identical
so the pipeline (and a requeued Slurm job) treats them the same way.

Checkpoint layout (``<save>/iter_0000100/``): ``model.safetensors`` (the model's state dict) +
``config.json``, ``optimizer.pt`` and ``trainer_state.json`` (iteration + loss history). Each is
written into a temp dir and renamed, so an interrupted save leaves no ``iter_*`` directory behind.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nemotron.errors import UserError

ITER_DIR = re.compile(r"^iter_(\d+)$")

# A batch: dict with input_ids (B, T), labels (B, T) and optional attention_mask. labels[:, t] is the
# target predicted at position t (already shifted: the token at t+1), -100 where no loss is taken.
Batch = dict[str, Any]


def lr_at(step: int, opt: dict[str, Any], train_iters: int) -> float:
    """Learning rate after ``step`` completed iterations, following Megatron's scheduler.

    Linear warmup from 0 over ``warmup_iters``; then over the decay span (``decay_iters`` or
    ``train_iters``) cosine / linear decay to ``min_lr``, or WSD: hold ``lr`` and anneal over the last
    ``wsd_decay_iters`` (default ``decay_iters_fraction`` of the span) with ``wsd_decay_style``
    (minus_sqrt, linear, cosine, exponential). ``min_lr`` after the span; ``constant`` holds ``lr``.
    """
    lr, min_lr = float(opt["lr"]), float(opt.get("min_lr", 0.0))
    warmup = int(opt.get("warmup_iters", 0))
    schedule = opt.get("lr_schedule", "cosine")
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    span = int(opt.get("decay_iters") or train_iters)
    if step >= span:
        return min_lr
    ratio = (step - warmup) / max(1, span - warmup)
    if schedule == "cosine":
        coeff = 0.5 * (math.cos(math.pi * ratio) + 1.0)
    elif schedule == "linear":
        coeff = 1.0 - ratio
    elif schedule == "wsd":
        anneal = int(opt.get("wsd_decay_iters") or max(1, round(float(opt.get("decay_iters_fraction", 0.2)) * span)))
        start = span - anneal
        if step <= start:
            coeff = 1.0
        else:
            r = (step - start) / anneal
            style = opt.get("wsd_decay_style", "minus_sqrt")
            coeff = {
                "linear": 1.0 - r,
                "cosine": 0.5 * (math.cos(math.pi * r) + 1.0),
                "exponential": 2.0 * 0.5**r - 1.0,
                "minus_sqrt": 1.0 - math.sqrt(r),
            }[style]
    else:
        raise UserError(f"unknown optimizer.lr_schedule {schedule!r}", hint="use wsd, cosine, linear or constant")
    return min_lr + coeff * (lr - min_lr)


def token_loss_sum(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed next-token cross-entropy over labelled tokens, and how many tokens were labelled.

    The output projection runs only on labelled positions: with a 4096-token vocabulary it is a third
    of the step, and in SFT most positions (prompts, padding) carry no label.
    """
    import torch.nn.functional as F

    labels = batch["labels"]
    keep = labels != -100
    n = int(keep.sum())
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"), use_cache=False
    ).last_hidden_state
    logits = model.lm_head(hidden[keep]).float()
    return F.cross_entropy(logits, labels[keep], reduction="sum"), n


def evaluate(model: Any, batches: list[Batch]) -> float:
    """Mean per-token loss over ``batches`` (eval mode, no grad)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in batches:
            loss, n = token_loss_sum(model, b)
            total += float(loss)
            count += n
    model.train(was_training)
    return total / max(1, count)


@dataclass
class LoopState:
    """What a checkpoint records besides the weights."""

    iteration: int = 0
    train_loss: list[list[float]] = field(default_factory=list)  # [step, loss]
    valid_loss: list[list[float]] = field(default_factory=list)
    lr: list[list[float]] = field(default_factory=list)
    tokens: int = 0


def latest_checkpoint(save_dir: pathlib.Path) -> pathlib.Path | None:
    """The ``iter_N`` directory with the highest N that holds a complete checkpoint."""
    if not save_dir.is_dir():
        return None
    found = []
    for d in save_dir.iterdir():
        m = ITER_DIR.match(d.name)
        if m and (d / "trainer_state.json").exists():
            found.append((int(m.group(1)), d))
    return max(found)[1] if found else None


def save_checkpoint(
    save_dir: pathlib.Path, model: Any, optimizer: Any, state: LoopState, keep: int = 2
) -> pathlib.Path:
    """Write ``iter_N`` atomically (temp dir + rename) and keep only the newest ``keep`` checkpoints."""
    import torch
    from safetensors.torch import save_file

    save_dir.mkdir(parents=True, exist_ok=True)
    final = save_dir / f"iter_{state.iteration:07d}"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=save_dir))
    try:
        # the raw state dict (save_pretrained renames keys to the hub layout); config.json for humans
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        model.config.to_json_file(str(tmp / "config.json"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state.__dict__))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (save_dir / "latest_checkpointed_iteration.txt").write_text(f"{state.iteration}\n")
    olds = sorted((int(m.group(1)), d) for d in save_dir.iterdir() if (m := ITER_DIR.match(d.name)) and d != final)
    for _, d in olds[: max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(d, ignore_errors=True)
    return final


def load_checkpoint(ckpt: pathlib.Path, model: Any, optimizer: Any) -> LoopState:
    """Restore weights, optimizer state and loop state from an ``iter_N`` directory."""
    import torch
    from safetensors.torch import load_file

    file = ckpt / "model.safetensors"
    if not file.exists():
        raise UserError(f"checkpoint {ckpt} has no weights", hint="delete it to restart from the previous one")
    missing, unexpected = model.load_state_dict(load_file(str(file)), strict=False)
    if missing or unexpected:
        raise UserError(
            f"checkpoint {ckpt} does not match the model config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    opt_file = ckpt / "optimizer.pt"
    if opt_file.exists():
        optimizer.load_state_dict(torch.load(opt_file, weights_only=True))
    return LoopState(**json.loads((ckpt / "trainer_state.json").read_text()))


def make_optimizer(model: Any, opt: dict[str, Any]):
    """AdamW; weight decay on matrices only (not norms, biases, A_log/D/dt_bias)."""
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": float(opt.get("weight_decay", 0.0))},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=float(opt["lr"]), betas=(float(opt.get("adam_beta1", 0.9)), float(opt.get("adam_beta2", 0.95)))
    )


def log(line: str) -> None:
    """Plain-text progress line (these end up in Slurm logs)."""
    print(line, flush=True, file=sys.stdout)


def write_text_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file beside it + rename, so a crash never leaves half a
    file where a later stage (or a requeued job) would read it; the temp file is removed on failure."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: pathlib.Path, data: Any) -> None:
    """Write JSON (indent 2, keys in insertion order) atomically, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2))


def write_sorted_json_atomic(path: pathlib.Path, data: Any) -> None:
    """Write JSON with sorted keys and a final newline atomically (stage summaries and results files,
    whose byte-stable layout keeps diffs between runs readable); the parent directory must exist."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def train_loop(
    *,
    model: Any,
    train_cfg: dict[str, Any],
    micro_batches: Callable[[int], list[Batch]],
    valid_batches: list[Batch],
    save_dir: pathlib.Path,
    load_dir: pathlib.Path | None = None,
    stop_after: int | None = None,
) -> LoopState:
    """Run ``train.train_iters`` optimizer steps, resuming from the newest checkpoint in ``save_dir``
    (or ``load_dir`` when ``save_dir`` has none).

    ``train.exit_interval`` stops after checkpointing that iteration (phase 1 of a two-phase run; the
    schedule still spans ``train_iters``). ``micro_batches(step)`` returns the micro-batches of global
    step ``step`` (1-based); their
    labelled tokens are averaged together, so gradient accumulation equals one big batch.
    ``stop_after`` ends the run after that many steps without saving (tests use it to simulate a
    preempted job). The final step is always checkpointed, so a rerun after completion is a no-op.
    """
    import torch

    train = train_cfg.get("train", {})
    opt_cfg = train_cfg.get("optimizer", {})
    iters = int(train.get("train_iters", 100))
    eval_interval = int(train.get("eval_interval", max(1, iters)))
    save_interval = int(train_cfg.get("checkpoint", {}).get("save_interval", iters))
    log_interval = int(train_cfg.get("logging", {}).get("log_interval", 10))
    clip = float(opt_cfg.get("clip_grad", 1.0))
    exit_at = int(train.get("exit_interval") or 0)

    optimizer = make_optimizer(model, opt_cfg)
    state = LoopState()
    ckpt = latest_checkpoint(save_dir) or (latest_checkpoint(load_dir) if load_dir else None)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer)
        log(f"resumed from {ckpt} at iteration {state.iteration}")
    if state.iteration == 0 and valid_batches:
        state.valid_loss.append([0, evaluate(model, valid_batches)])
        log(f"step 0 valid_loss {state.valid_loss[-1][1]:.4f}")

    model.train()
    steps_done = 0
    while state.iteration < iters and not (exit_at and state.iteration >= exit_at):
        step = state.iteration + 1
        lr = lr_at(step - 1, opt_cfg, iters)
        for g in optimizer.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        micro = micro_batches(step)
        n_total = sum(int((b["labels"] != -100).sum()) for b in micro)
        seen = sum(  # real (unpadded) tokens
            int(b["attention_mask"].sum()) if b.get("attention_mask") is not None else int(b["input_ids"].numel())
            for b in micro
        )
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for b in micro:
            loss, _ = token_loss_sum(model, b)
            (loss / max(1, n_total)).backward()
            loss_sum += float(loss.detach())
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        dt = time.perf_counter() - t0
        loss_val = loss_sum / max(1, n_total)
        if not math.isfinite(loss_val):
            raise RuntimeError(f"training diverged at step {step} (loss {loss_val})")
        state.iteration = step
        state.tokens += seen
        state.train_loss.append([step, loss_val])
        state.lr.append([step, lr])
        if step == 1 or step % log_interval == 0 or step == iters:
            log(f"step {step} loss {loss_val:.4f} lr {lr:.3e} tok/s {seen / dt:.0f}")
        if valid_batches and (step % eval_interval == 0 or step == iters):
            state.valid_loss.append([step, evaluate(model, valid_batches)])
            log(f"step {step} valid_loss {state.valid_loss[-1][1]:.4f}")
        steps_done += 1
        exiting = step == exit_at
        if step % save_interval == 0 or step == iters or exiting:
            path = save_checkpoint(save_dir, model, optimizer, state)
            log(f"saved checkpoint {path}")
        if exiting:
            log(f"exit_interval reached at iteration {step} (of {iters})")
            break
        if stop_after is not None and steps_done >= stop_after:
            break  # like a preempted job: progress since the last checkpoint is lost
    return state


def summarize(state: LoopState, window: int = 10) -> dict[str, Any]:
    """Loss-curve summary for artifact metadata: first/last windows averaged to smooth noise."""
    losses = [v for _, v in state.train_loss]
    head = losses[: min(window, len(losses))]
    tail = losses[-min(window, len(losses)) :]
    return {
        "iteration": state.iteration,
        "initial_train_loss": round(sum(head) / len(head), 4) if head else None,
        "final_train_loss": round(sum(tail) / len(tail), 4) if tail else None,
        "initial_valid_loss": round(state.valid_loss[0][1], 4) if state.valid_loss else None,
        "final_valid_loss": round(state.valid_loss[-1][1], 4) if state.valid_loss else None,
        "tokens": state.tokens,
    }
