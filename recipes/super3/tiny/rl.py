"""Tiny (CPU) RL stage: GRPO with TRL's ``GRPOTrainer`` (HF generation, no vLLM) on a verifiable reward.

The full-scale RLVR stage runs NeMo-RL GRPO on Ray; this stand-in keeps its config keys and meaning so
the same ``grpo``/``policy``/``env`` sections drive both. One GRPO step here is what it is in NeMo-RL:
sample ``num_prompts_per_step`` prompts, generate ``num_generations_per_prompt`` completions each,
score them with the ``env.name`` reward, and take ``generation batch / train_global_batch_size``
optimizer steps on them (micro-batches of ``train_micro_batch_size``).

Outputs in ``output_dir``: ``hf/`` (the final model + tokenizer, written atomically), ``metrics.json``
(per-step reward curve, greedy val accuracy before/after and every ``val_period`` steps of this
process, p(correct) on train/val before/after) and ``checkpoints/`` (TRL/Trainer checkpoints; a
rerun resumes from the newest one, its reward curve included).
"""

from __future__ import annotations

import json
import math
import pathlib
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from nemotron.errors import UserError
from super3.tiny.model import load_model, save_model, set_threads
from super3.tiny.rewards import REWARDS, reward_function, score_answer
from super3.tiny.training import write_sorted_json_atomic

# Leave-one-out baselines (NeMo-RL's default) and TRL's group-mean baseline differ only by the factor
# G/(G-1) on the advantage, which group std-normalisation cancels; TRL has no separate switch for it.


@dataclass(frozen=True)
class GrpoPlan:
    """The config's ``grpo``/``policy``/``env`` sections resolved into TRL terms (and checked)."""

    prompts_per_step: int
    generations_per_prompt: int
    max_num_steps: int
    val_period: int
    micro_batch: int
    global_batch: int
    lr: float
    max_new_tokens: int
    temperature: float
    top_p: float
    max_total_sequence_length: int
    kl_coef: float
    clip_eps: float
    normalize_rewards: bool
    env_name: str
    save_interval: int
    seed: int

    @property
    def generation_batch(self) -> int:
        """Completions sampled per GRPO step."""
        return self.prompts_per_step * self.generations_per_prompt

    @property
    def optimizer_steps_per_grpo_step(self) -> int:
        """Optimizer (Trainer) steps taken on each generation batch."""
        return self.generation_batch // self.global_batch

    @property
    def gradient_accumulation(self) -> int:
        return self.global_batch // self.micro_batch


def plan_from_config(train_cfg: dict[str, Any]) -> GrpoPlan:
    """Read the RL config sections (defaults as in the schema) and check they fit together."""
    grpo = train_cfg.get("grpo") or {}
    policy = train_cfg.get("policy") or {}
    gen = policy.get("generation") or {}
    env = train_cfg.get("env") or {}
    ckpt = train_cfg.get("checkpoint") or {}
    plan = GrpoPlan(
        prompts_per_step=int(grpo.get("num_prompts_per_step", 8)),
        generations_per_prompt=int(grpo.get("num_generations_per_prompt", 4)),
        max_num_steps=int(grpo.get("max_num_steps", 30)),
        val_period=int(grpo.get("val_period", 10)),
        micro_batch=int(policy.get("train_micro_batch_size", 8)),
        global_batch=int(policy.get("train_global_batch_size", 32)),
        lr=float(policy.get("lr", 1e-6)),
        max_new_tokens=int(gen.get("max_new_tokens", 4)),
        temperature=float(gen.get("temperature", 1.0)),
        top_p=float(gen.get("top_p", 1.0)),
        max_total_sequence_length=int(policy.get("max_total_sequence_length", 64)),
        kl_coef=float(grpo.get("kl_coef", 0.0)),
        clip_eps=float(grpo.get("clip_eps", 0.2)),
        normalize_rewards=bool(grpo.get("normalize_rewards", True)),
        env_name=str(env.get("name", "math")),
        save_interval=int(ckpt.get("save_interval", 10)),
        seed=int(train_cfg.get("seed", 1234)),
    )
    if gen.get("backend", "hf") != "hf":
        raise UserError(
            f"policy.generation.backend={gen.get('backend')!r} is not available on the tiny backend",
            hint="set policy.generation.backend=hf (TRL generates with transformers on CPU)",
        )
    if plan.generations_per_prompt < 2:
        raise UserError("grpo.num_generations_per_prompt must be at least 2", hint="GRPO compares samples of a group")
    if plan.global_batch % plan.micro_batch:
        raise UserError(
            f"policy.train_global_batch_size={plan.global_batch} is not a multiple of "
            f"policy.train_micro_batch_size={plan.micro_batch}"
        )
    if plan.generation_batch % plan.global_batch:
        raise UserError(
            f"grpo.num_prompts_per_step * grpo.num_generations_per_prompt = {plan.generation_batch} is not a "
            f"multiple of policy.train_global_batch_size={plan.global_batch}",
            hint="each GRPO step must split into whole optimizer steps",
        )
    return plan


def read_prompts(path: pathlib.Path, *, required: bool = True) -> list[dict[str, str]]:
    """Rows ``{"prompt", "answer"}`` of an rl-data JSONL file: ``{prompt, answer}`` rows or NeMo-Gym rows
    (the formats the GPU path reads; one definition, ``nemotron.data_prep.rl.read_row``)."""
    from nemotron.data_prep.rl import read_row

    if not path.exists():
        if required:
            raise UserError(f"RL data file {path} does not exist", hint="run `data prep rl` for this pipeline first")
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt, answer, _agent = read_row(json.loads(line))
            rows.append({"prompt": prompt, "answer": answer})
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise UserError(f"{path}:{number} is not an RL row ({exc})") from exc
    if required and not rows:
        raise UserError(f"RL data file {path} has no prompts")
    return rows


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The user turn in the chat template, ending with the assistant generation prompt."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a completion: the model's generation eos ids plus the tokenizer's eos."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids


def fit_scan_chunk(model: Any, sequence_length: int) -> int:
    """Shrink the Mamba-2 scan chunk to the RL sequences (exact maths, ~2x faster on CPU).

    The PyTorch SSD scan pads every sequence to a multiple of the chunk and its intra-chunk work grows
    with chunk^2; RL prompts+answers are a few dozen tokens, far below the pretraining chunk. Only the
    live modules change, not the saved config.
    """
    limit = int(getattr(model.config, "chunk_size", 0) or 0)
    chunk = 1 << max(3, (max(1, sequence_length) - 1).bit_length())
    if limit:
        chunk = min(chunk, limit)
    for module in model.modules():
        if hasattr(module, "chunk_size") and hasattr(module, "ssm_state_size"):
            module.chunk_size = chunk
    return chunk


def greedy_accuracy(model: Any, tokenizer: Any, rows: list[dict[str, str]], max_new_tokens: int) -> float | None:
    """Fraction of ``rows`` answered exactly (greedy decoding, same reward rule as training)."""
    import torch

    if not rows:
        return None
    ends = end_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ends[0]
    encoded = [tokenizer(render_prompt(tokenizer, r["prompt"]), add_special_tokens=False)["input_ids"] for r in rows]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=ends,
                pad_token_id=pad,
            )
    finally:
        model.train(was_training)
    correct = 0.0
    for row, ids in zip(rows, out[:, width:].tolist(), strict=True):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        finished = any(t in ends for t in ids)
        correct += score_answer(text, row["answer"], terminated=finished) == 1.0
    return correct / len(rows)


def answer_probability(model: Any, tokenizer: Any, rows: list[dict[str, str]], batch: int = 32) -> float | None:
    """Mean probability that one T=1 sample is exactly ``answer<|im_end|>``: the expected exact-answer
    reward, computed without sampling noise (a handful of greedy val prompts is too coarse to see RL)."""
    import torch

    if not rows:
        return None
    end = tokenizer.eos_token or ""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(rows), batch):
            pairs = []
            for row in rows[start : start + batch]:
                prompt = tokenizer(render_prompt(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
                answer = tokenizer(row["answer"] + end, add_special_tokens=False)["input_ids"]
                pairs.append((prompt, answer))
            width = max(len(p) + len(a) for p, a in pairs)
            ids = torch.tensor([p + a + [pad] * (width - len(p) - len(a)) for p, a in pairs])
            mask = torch.tensor([[1] * (len(p) + len(a)) + [0] * (width - len(p) - len(a)) for p, a in pairs])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            for row, (p, a) in enumerate(pairs):
                positions = torch.arange(len(p) - 1, len(p) + len(a) - 1)
                total += float(torch.exp(logp[row, positions, torch.tensor(a)].sum()))
    finally:
        model.train(was_training)
    return total / len(rows)


def p_correct_by_split(
    model: Any, tokenizer: Any, train_rows: list[dict[str, str]], val_rows: list[dict[str, str]]
) -> dict[str, float | None]:
    """``answer_probability`` on the train and val prompts, computed once when validation scores the
    training prompts themselves (a closed task whose data holds nothing out)."""
    train = answer_probability(model, tokenizer, train_rows)
    return {"train": train, "val": train if val_rows is train_rows else answer_probability(model, tokenizer, val_rows)}


def window_mean(values: list[float], window: int, *, last: bool) -> float | None:
    """Mean of the first or last ``window`` values (None when empty)."""
    if not values:
        return None
    part = values[-window:] if last else values[:window]
    return sum(part) / len(part)


def _checkpoint_dir(train_cfg: dict[str, Any], output_dir: pathlib.Path) -> pathlib.Path:
    save = (train_cfg.get("checkpoint") or {}).get("save")
    return pathlib.Path(save) if save else output_dir / "checkpoints"


def _resume_from(train_cfg: dict[str, Any], ckpt_dir: pathlib.Path) -> str | None:
    """``checkpoint.load`` if set, else the newest ``checkpoint-N`` under the save dir (requeued job)."""
    from transformers.trainer_utils import get_last_checkpoint

    load = (train_cfg.get("checkpoint") or {}).get("load")
    if load:
        if not pathlib.Path(load).is_dir():
            raise UserError(f"checkpoint.load={load} is not a directory")
        found = get_last_checkpoint(load)
        return found or str(load)
    if ckpt_dir.is_dir():
        return get_last_checkpoint(str(ckpt_dir))
    return None


def grpo_config(plan: GrpoPlan, ckpt_dir: pathlib.Path):
    """The ``GRPOConfig`` for ``plan``: CPU, float32, HF generation, one log line per GRPO step."""
    from trl import GRPOConfig

    per_step = plan.optimizer_steps_per_grpo_step
    return GRPOConfig(
        output_dir=str(ckpt_dir),
        use_vllm=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        per_device_train_batch_size=plan.micro_batch,
        gradient_accumulation_steps=plan.gradient_accumulation,
        generation_batch_size=plan.generation_batch,
        num_generations=plan.generations_per_prompt,
        max_completion_length=plan.max_new_tokens,
        temperature=plan.temperature,
        top_p=plan.top_p,
        beta=plan.kl_coef,
        epsilon=plan.clip_eps,
        scale_rewards="group" if plan.normalize_rewards else "none",
        learning_rate=plan.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_steps=plan.max_num_steps * per_step,
        logging_steps=per_step,
        save_strategy="steps",
        save_steps=plan.save_interval * per_step,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=plan.seed,
        data_seed=plan.seed,
        shuffle_dataset=True,
        log_completions=False,
    )


@dataclass
class BestPolicy:
    """The policy with the best greedy validation accuracy seen so far (weights kept in memory).

    The published model is this one, not necessarily the last: NeMo-RL's checkpointing keeps the
    top-k checkpoints by a validation metric (``checkpointing.metric_name``) for the same reason, and
    a tiny policy's greedy accuracy moves by several points between validations. The input policy
    (step 0) is a candidate too: when no RL step validates at least as well, the stage publishes its
    input unchanged and says so, rather than a worse model (the toy's greedy answers sit on a knife
    edge: one T=1 sample is right ~28 % of the time while greedy is right ~76 %, so updates flip them).
    The tiny model is small enough (~0.7M parameters) to copy; a resumed run starts a new record."""

    accuracy: float = -1.0
    step: int | None = None
    state: dict[str, Any] | None = None

    def offer(self, model: Any, accuracy: float | None, step: int) -> None:
        if accuracy is not None and accuracy >= self.accuracy:  # ties: the later (longer-trained) policy
            self.accuracy, self.step = accuracy, step
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _progress_callback(
    plan: GrpoPlan, model: Any, tokenizer: Any, val_rows: list[dict[str, str]], val_curve: list, best: BestPolicy
):
    """A Trainer callback: one plain text line per GRPO step; greedy validation every ``val_period``."""
    from transformers import TrainerCallback

    per_step = plan.optimizer_steps_per_grpo_step

    class GrpoProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return
            step = state.global_step // per_step
            kl = logs.get("kl")
            kl_text = f" kl {kl:.4f}" if kl is not None else ""
            print(
                f"rl step {step}/{plan.max_num_steps} reward {logs['reward']:.3f} "
                f"reward_std {logs.get('reward_std', float('nan')):.3f} "
                f"loss {logs.get('loss', float('nan')):.4f}{kl_text}",
                flush=True,
            )

        def on_step_end(self, args, state, control, **kwargs):
            step, rest = divmod(state.global_step, per_step)
            if rest or not plan.val_period or step % plan.val_period or not val_rows:
                return
            accuracy = greedy_accuracy(model, tokenizer, val_rows, plan.max_new_tokens)
            val_curve.append({"step": step, "accuracy": accuracy})
            best.offer(model, accuracy, step)
            print(f"rl step {step}/{plan.max_num_steps} val_accuracy {accuracy:.3f}", flush=True)

    return GrpoProgress()


def reward_curve(log_history: list[dict[str, Any]], per_step: int) -> list[dict[str, float]]:
    """Per-GRPO-step reward records from the Trainer's log history (survives resume via trainer_state)."""
    curve = []
    for entry in log_history:
        if "reward" in entry and entry.get("reward") is not None:
            record = {"step": entry["step"] // per_step, "reward": float(entry["reward"])}
            for key in ("reward_std", "kl", "loss", "completions/mean_length", "frac_reward_zero_std"):
                if entry.get(key) is not None:
                    record[key.replace("/", "_")] = float(entry[key])
            curve.append(record)
    return curve


def _fmt(probs: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in probs.items() if v is not None)


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Run GRPO on the ``model`` input with the ``data`` input's prompts; return the artifact metadata."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from transformers.utils.logging import disable_progress_bar
    from trl import GRPOTrainer

    started = time.monotonic()
    set_threads()
    disable_progress_bar()
    for slot in ("model", "data"):
        if slot not in inputs:
            raise UserError(f"the RL stage needs a '{slot}' input", hint=f"set run.{slot} to an artifact reference")
    plan = plan_from_config(train_cfg)
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = _checkpoint_dir(train_cfg, output_dir)

    model, tokenizer = load_model(inputs["model"].path)
    data_dir = pathlib.Path(inputs["data"].path)
    train_rows = read_prompts(data_dir / "train.jsonl")
    val_rows = read_prompts(data_dir / "val.jsonl", required=False)
    val_source = "val"
    if not val_rows:
        # A closed task (the tiny chain's 100 addition facts, all of which SFT trained on and the eval
        # asks): held-out facts would measure interference between facts, not the skill, so the data
        # holds none out and validation scores the training prompts, as the eval does.
        val_rows, val_source = train_rows, "train"
        print(
            f"rl: no held-out prompts in {data_dir / 'val.jsonl'}; validating on the {len(train_rows)} training prompts",
            flush=True,
        )
    if len(train_rows) < plan.prompts_per_step:
        raise UserError(
            f"{data_dir / 'train.jsonl'} has {len(train_rows)} prompts, fewer than "
            f"grpo.num_prompts_per_step={plan.prompts_per_step}"
        )
    rendered = [render_prompt(tokenizer, row["prompt"]) for row in train_rows]
    longest = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered)
    if longest + plan.max_new_tokens > plan.max_total_sequence_length:
        raise UserError(
            f"a prompt of {longest} tokens plus policy.generation.max_new_tokens={plan.max_new_tokens} exceeds "
            f"policy.max_total_sequence_length={plan.max_total_sequence_length}",
            hint="raise policy.max_total_sequence_length or shorten the prompts",
        )
    fit_scan_chunk(model, longest + plan.max_new_tokens)
    dataset = Dataset.from_list(
        [{"prompt": text, "answer": row["answer"]} for text, row in zip(rendered, train_rows, strict=True)]
    )

    ends = end_token_ids(model, tokenizer)
    val_before = greedy_accuracy(model, tokenizer, val_rows, plan.max_new_tokens)
    prob_before = p_correct_by_split(model, tokenizer, train_rows, val_rows)
    print(f"rl before: val greedy accuracy {val_before}, p(correct) {_fmt(prob_before)}", flush=True)

    val_curve: list[dict[str, Any]] = []
    best = BestPolicy()
    best.offer(model, val_before, 0)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_function(plan.env_name, end_token_ids=ends)],
        args=grpo_config(plan, ckpt_dir),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[_progress_callback(plan, model, tokenizer, val_rows, val_curve, best)],
    )
    trainer.remove_callback(PrinterCallback)
    resume = _resume_from(train_cfg, ckpt_dir)
    if resume:
        print(f"rl resuming from {resume}", flush=True)
    train_started = time.monotonic()
    with warnings.catch_warnings():
        # TRL 1.16 calls the renamed `is_gradient_checkpointing` on every generation; nothing to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.monotonic() - train_started

    model = trainer.model
    # "after" is the trained policy (what GRPO did); the published one may be an earlier, better-validated one
    val_after = greedy_accuracy(model, tokenizer, val_rows, plan.max_new_tokens)
    prob_after = p_correct_by_split(model, tokenizer, train_rows, val_rows)
    print(f"rl after: val greedy accuracy {val_after}, p(correct) {_fmt(prob_after)}", flush=True)
    last_step = trainer.state.global_step // plan.optimizer_steps_per_grpo_step
    best.offer(model, val_after, last_step)
    if best.state is not None and best.step != last_step:
        model.load_state_dict(best.state)
        if best.step == 0:
            print(
                f"rl: no GRPO step validated as well as the input policy ({best.accuracy:.3f}); "
                "publishing the input weights unchanged",
                flush=True,
            )
        else:
            print(f"rl publishes the step-{best.step} policy (best val accuracy {best.accuracy:.3f})", flush=True)
    save_model(model, tokenizer, output_dir / "hf")

    curve = reward_curve(trainer.state.log_history, plan.optimizer_steps_per_grpo_step)
    rewards = [point["reward"] for point in curve]
    window = max(1, min(10, len(rewards) // 4))
    metadata = {
        "backend": "tiny",
        "algorithm": "grpo",
        "env": plan.env_name,
        "reward": REWARDS[plan.env_name].__name__,
        "model_dir": "hf",
        "steps": len(rewards),
        "reward_window": window,
        "reward_first": window_mean(rewards, window, last=False),
        "reward_last": window_mean(rewards, window, last=True),
        "val_accuracy_before": val_before,
        "val_accuracy_after": val_after,
        "train_p_correct_before": prob_before["train"],
        "train_p_correct_after": prob_after["train"],
        "val_p_correct_before": prob_before["val"],
        "val_p_correct_after": prob_after["val"],
        "num_val_prompts": len(val_rows),
        "val_source": val_source,
        "published_step": best.step if best.state is not None else last_step,
        "published_val_accuracy": best.accuracy if best.state is not None else val_after,
        "num_train_prompts": len(train_rows),
        "resumed_from": resume,
        "train_s": round(train_seconds, 1),
        "runtime_s": round(time.monotonic() - started, 1),
    }
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metadata.items()}
    write_sorted_json_atomic(
        output_dir / "metrics.json",
        {**clean, "plan": asdict(plan), "reward_curve": curve, "val_curve": val_curve},
    )
    print(
        f"rl done: reward first {clean['reward_first']} -> last {clean['reward_last']} "
        f"(window {window}), val accuracy {val_before} -> {val_after}, {clean['runtime_s']} s",
        flush=True,
    )
    return clean
