"""Tiny RL stage: the exact-answer reward, the prompt asset, config mapping, and GRPO raising the reward.

The GRPO tests are self-contained: a fresh tiny NemotronH (the shipped model section) is taught the
addition format with a few hundred plain causal-LM steps, until its sampled reward is mid-range
(~0.4-0.55) instead of 0 or 1; then the real TRL ``GRPOTrainer`` runs through ``rl.run`` with the
shipped ``configs/super3/rl/rlvr/tiny.yaml`` (sizes, rate and temperature set for 16 prompts, see
``_train_cfg``) on 16 of the prompts.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import types

import pytest
from conftest import REPO, load_tiny_yaml
from super3.tiny import rewards

from nemotron.errors import UserError

ASSET = REPO / "recipes" / "super3" / "assets" / "tiny" / "rl_prompts.jsonl"
GENERATOR = ASSET.with_name("make_rl_prompts.py")

# GRPO test sizes: 16 training prompts (each seen every 2 steps), RL_STEPS GRPO steps, reward windows
# of WINDOW steps. The warm-up stops once p(correct) on those prompts reaches WARM_P.
RL_PROMPTS = 16
RL_STEPS = 40
WINDOW = 10
WARM_P = 0.3
WARM_MAX_ROUNDS = 12
# The margins. The logged reward is a 64-sample mean per step (std ~0.08 across steps here), so a
# 10-step window has a standard error of ~0.025 and the first/last difference ~0.035: a policy that
# does not learn passes MIN_RISE with ~1% probability. Measured over 4 warm-up seeds x 2 RL seeds:
# reward rise 0.145-0.243, p(correct) rise 0.23-0.35 (with the earlier 0.1 credit for wrong integers);
# with the binary reward, seeds 11/12: reward rise 0.28/0.31, p(correct) rise 0.40/0.38.
# p(correct) is computed exactly (no sampling).
MIN_RISE = 0.08
MIN_P_RISE = 0.1


# ---------------------------------------------------------------- reward (pure functions)


def test_extract_answer_stops_at_end_of_turn_and_strips():
    assert rewards.extract_answer(" 12 <|im_end|>\n<|im_start|>user") == "12"
    assert rewards.extract_answer("7") == "7"
    assert rewards.extract_answer("\n") == ""


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("7", "7", 1.0),
        (" 7\n", "7", 1.0),
        ("7<|im_end|>", "7", 1.0),
        ("17", "7", 0.0),  # well-formed but wrong: binary, as NeMo-RL's math environment
        ("-3", "7", 0.0),
        ("7 apples", "7", 0.0),  # not exactly the answer, not a number
        ("seven", "7", 0.0),
        ("", "7", 0.0),
        ("<|im_end|>7", "7", 0.0),  # the answer after the turn ended does not count
    ],
)
def test_score_answer(completion, answer, expected):
    assert rewards.score_answer(completion, answer) == expected


def test_truncated_completion_scores_zero():
    assert rewards.score_answer("7", "7", terminated=False) == 0.0


def test_math_reward_trl_signature_and_termination():
    """TRL calls reward(prompts=, completions=, answer=[...], completion_ids=, **internals)."""
    completions = ["7", "8", "7", [{"role": "assistant", "content": "7"}]]
    ids = [[30, 2], [31, 2], [30, 30, 30, 30], [30, 2]]  # the third never emitted an end token
    out = rewards.math_reward(
        prompts=["p"] * 4,
        completions=completions,
        answer=["7"] * 4,
        completion_ids=ids,
        end_token_ids=[2],
        trainer_state=object(),
        log_metric=lambda *a: None,
    )
    assert out == [1.0, 0.0, 0.0, 1.0]
    # without end ids the text alone decides
    assert rewards.math_reward(["p"], ["7"], answer=["7"]) == [1.0]
    with pytest.raises(ValueError):
        rewards.math_reward(["p"], ["7", "8"], answer=["7"])


def test_reward_function_is_named_after_env_and_rejects_others():
    import pickle

    fn = rewards.reward_function("math", end_token_ids=[2])
    assert fn(prompts=["p"], completions=["5"], answer=["5"], completion_ids=[[9, 2]]) == [1.0]
    assert pickle.loads(pickle.dumps(fn))(prompts=["p"], completions=["5"], answer=["5"]) == [1.0]
    from trl.trainer.utils import get_callable_name

    assert get_callable_name(fn) == "math_reward"
    with pytest.raises(UserError, match="swe"):
        rewards.reward_function("swe")


# ---------------------------------------------------------------- prompt asset


def test_prompt_asset_is_all_100_pairs_in_sft_format():
    rows = [json.loads(line) for line in ASSET.read_text().splitlines()]
    assert len(rows) == 100
    seen = set()
    for row in rows:
        assert set(row) == {"prompt", "answer"}
        a, b = row["prompt"].removeprefix("What is ").removesuffix("?").split(" + ")
        assert row["prompt"] == f"What is {int(a)} + {int(b)}?"
        assert row["answer"] == str(int(a) + int(b))
        seen.add((int(a), int(b)))
    assert seen == {(a, b) for a in range(10) for b in range(10)}


def test_prompt_asset_matches_its_generator(tmp_path):
    check = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    edited = tmp_path / "rl_prompts.jsonl"
    edited.write_text(ASSET.read_text().replace('"answer": "18"', '"answer": "19"'))
    stale = subprocess.run([sys.executable, str(GENERATOR), "--check", "--out", str(edited)], capture_output=True)
    assert stale.returncode == 1
    fresh = tmp_path / "fresh.jsonl"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(fresh)], check=True)
    assert fresh.read_bytes() == ASSET.read_bytes()


# ---------------------------------------------------------------- config mapping


def _rl_yaml() -> dict:
    return load_tiny_yaml("rl/rlvr")


def test_tiny_yaml_validates_and_maps_onto_grpo_config(tmp_path):
    from super3.tiny import rl

    from nemotron.config.schemas.rl import RlConfig

    cfg = _rl_yaml()
    RlConfig.model_validate(cfg)
    plan = rl.plan_from_config(cfg)
    args = rl.grpo_config(plan, tmp_path)
    assert args.use_vllm is False
    assert args.num_generations == cfg["grpo"]["num_generations_per_prompt"]
    assert args.generation_batch_size == cfg["grpo"]["num_prompts_per_step"] * args.num_generations
    assert (
        args.per_device_train_batch_size * args.gradient_accumulation_steps
        == (cfg["policy"]["train_global_batch_size"])
    )
    assert args.max_steps == cfg["grpo"]["max_num_steps"] * plan.optimizer_steps_per_grpo_step
    assert args.logging_steps == plan.optimizer_steps_per_grpo_step  # one log line per GRPO step
    assert args.max_completion_length == cfg["policy"]["generation"]["max_new_tokens"]
    assert args.beta == cfg["grpo"]["kl_coef"] and args.epsilon == cfg["grpo"]["clip_eps"]
    assert args.learning_rate == cfg["policy"]["lr"]
    assert args.bf16 is False and args.use_cpu is True


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"policy": {"generation": {"backend": "vllm"}}}, "generation.backend"),
        ({"grpo": {"num_generations_per_prompt": 1}}, "at least 2"),
        ({"policy": {"train_global_batch_size": 24}}, "multiple of policy.train_micro_batch_size"),
        (
            {"policy": {"train_global_batch_size": 48, "train_micro_batch_size": 16}},
            "is not a multiple of policy.train_global_batch_size",
        ),
    ],
)
def test_inconsistent_config_is_a_user_error(override, match):
    from super3.tiny import rl

    cfg = _rl_yaml()
    for section, values in override.items():
        for key, value in values.items():
            if isinstance(value, dict):
                cfg[section][key].update(value)
            else:
                cfg[section][key] = value
    with pytest.raises(UserError, match=match):
        rl.plan_from_config(cfg)


def test_read_prompts_errors(tmp_path):
    from super3.tiny import rl

    with pytest.raises(UserError, match="does not exist") as missing:
        rl.read_prompts(tmp_path / "train.jsonl")
    assert "data prep rl" in missing.value.hint
    assert rl.read_prompts(tmp_path / "val.jsonl", required=False) == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "What is 1 + 1?", "answer": "2"}\n{"prompt": "no answer"}\n')
    with pytest.raises(UserError, match="bad.jsonl:2"):
        rl.read_prompts(bad)


# ---------------------------------------------------------------- GRPO end to end


def _addition_examples(tokenizer, rows: list[dict[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) per row: the chat-rendered question and `C<|im_end|>`."""
    from super3.tiny import rl

    examples = []
    for row in rows:
        prompt = tokenizer(rl.render_prompt(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(f"{row['answer']}<|im_end|>", add_special_tokens=False)["input_ids"]
        examples.append((prompt, answer))
    return examples


def p_correct(model, tokenizer, rows: list[dict[str, str]]) -> float:
    """Mean probability that one sample (T=1) is exactly `answer<|im_end|>`: the expected exact-answer
    reward, computed without sampling noise."""
    import torch

    total = 0.0
    model.eval()
    with torch.no_grad():
        for prompt, answer in _addition_examples(tokenizer, rows):
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
            logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
            total += float(torch.exp(logp[torch.arange(len(answer)), torch.tensor(answer)].sum()))
    return total / len(rows)


def _warm_up(model, tokenizer, rl_rows: list[dict[str, str]], seed: int) -> float:
    """Plain causal-LM training on all 100 addition chats (loss on `C<|im_end|>`), in rounds of 50
    steps until the policy answers the RL prompts right with probability >= WARM_P (so GRPO starts
    mid-range whatever the platform's float rounding did to the trajectory). Returns that probability."""
    import torch

    examples = _addition_examples(tokenizer, [json.loads(line) for line in ASSET.read_text().splitlines()])
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    batch = 16
    for _ in range(WARM_MAX_ROUNDS):
        model.train()
        for _ in range(50):
            chosen = rng.sample(examples, batch)
            width = max(len(p) + len(c) for p, c in chosen)
            ids = torch.full((batch, width), tokenizer.pad_token_id)
            labels = torch.full((batch, width), -100)
            mask = torch.zeros((batch, width), dtype=torch.long)
            for row, (p, c) in enumerate(chosen):
                ids[row, : len(p) + len(c)] = torch.tensor(p + c)
                mask[row, : len(p) + len(c)] = 1
                labels[row, len(p) : len(p) + len(c)] = torch.tensor(c)
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        prob = p_correct(model, tokenizer, rl_rows)
        if prob >= WARM_P:
            return prob
    raise AssertionError(f"warm-up did not reach p(correct) >= {WARM_P} (last {prob:.3f})")


@pytest.fixture(scope="module")
def warm(tmp_path_factory, tiny_tokenizer, tiny_model_section) -> types.SimpleNamespace:
    """``inputs`` for rl.run (a warmed-up tiny model artifact dir, an rl-data dir with 16 train and 10
    val prompts), the train ``rows`` and ``p0`` = p(correct) on them before RL."""
    from super3.tiny import model as tiny_model
    from super3.tiny import rl

    tiny_model.set_threads()
    root = tmp_path_factory.mktemp("rl")
    rows = [json.loads(line) for line in ASSET.read_text().splitlines()]
    random.Random(7).shuffle(rows)
    model = tiny_model.new_model(tiny_model_section, seed=0, tokenizer=tiny_tokenizer)
    rl.fit_scan_chunk(model, 32)
    p0 = _warm_up(model, tiny_tokenizer, rows[:RL_PROMPTS], seed=0)
    model_dir = tiny_model.save_model(model, tiny_tokenizer, root / "sft" / "hf")

    data = root / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:RL_PROMPTS]))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[RL_PROMPTS : RL_PROMPTS + 10]))
    (data / "manifest.json").write_text(json.dumps({"train": "train.jsonl", "val": "val.jsonl"}))
    inputs = {
        "model": types.SimpleNamespace(path=model_dir.parent, metadata={}),  # the stage finds <path>/hf
        "data": types.SimpleNamespace(path=data, metadata={}),
    }
    return types.SimpleNamespace(inputs=inputs, rows=rows[:RL_PROMPTS], p0=p0)


def _train_cfg(seed: int, steps: int = RL_STEPS, **grpo) -> dict:
    cfg = _rl_yaml()
    cfg["seed"] = seed
    cfg["grpo"].update(
        {"max_num_steps": steps, "val_period": 20, "num_prompts_per_step": 8, "num_generations_per_prompt": 8, **grpo}
    )
    # The mechanics under test (GRPO raises the sampled reward on a warmed-up policy) on 16 prompts:
    # 8 prompts x 8 samples per step at T=1, 4 optimizer steps of 16 each at a rate that moves the
    # reward within 40 steps. The chain's own sizes (configs/super3/rl/rlvr/tiny.yaml) are tuned for
    # greedy accuracy on all 100 prompts, which needs more samples per step than this test can afford.
    cfg["policy"].update({"lr": 5.0e-4, "train_global_batch_size": 16, "train_micro_batch_size": 16})
    cfg["policy"]["generation"]["temperature"] = 1.0
    cfg["checkpoint"]["save_interval"] = 10
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_grpo_raises_reward(warm, tmp_path, seed, capsys):
    from super3.tiny import model as tiny_model
    from super3.tiny import rl

    out = tmp_path / "out"
    meta = rl.run(_train_cfg(seed), warm.inputs, out)

    metrics = json.loads((out / "metrics.json").read_text())
    curve = [point["reward"] for point in metrics["reward_curve"]]
    assert [point["step"] for point in metrics["reward_curve"]] == list(range(1, RL_STEPS + 1))
    first = sum(curve[:WINDOW]) / WINDOW
    last = sum(curve[-WINDOW:]) / WINDOW
    assert 0.1 < first < 0.7, "the warm-up should leave the policy in the middle of the reward range"
    assert last - first > MIN_RISE, curve

    # the metadata the artifact publishes agrees with the file
    assert meta["steps"] == RL_STEPS and meta["env"] == "math"
    w = meta["reward_window"]
    assert meta["reward_first"] == pytest.approx(sum(curve[:w]) / w)
    assert meta["reward_last"] == pytest.approx(sum(curve[-w:]) / w)
    assert 0.0 <= meta["val_accuracy_before"] <= 1.0 and 0.0 <= meta["val_accuracy_after"] <= 1.0
    assert [v["step"] for v in metrics["val_curve"]] == [20, 40]
    assert metrics["val_curve"][-1]["accuracy"] == meta["val_accuracy_after"]  # the trained policy
    # the published policy is the best validated one, the input included (ties: the later)
    best = max([meta["val_accuracy_before"], *(v["accuracy"] for v in metrics["val_curve"])])
    assert meta["published_val_accuracy"] == best and meta["published_step"] in (0, 20, 40)

    # one plain log line per GRPO step
    logged = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("rl step ") and " reward " in line
    ]
    assert len(logged) == RL_STEPS

    # the output is a loadable model directory with its tokenizer; the trained policy (the last
    # checkpoint) answers the training prompts right more often (exact expectation, no sampling noise)
    published, tokenizer = tiny_model.load_model(out / "hf")
    assert tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    del published
    newest = max((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    trained, tokenizer = tiny_model.load_model(newest)
    p1 = p_correct(trained, tokenizer, warm.rows)
    print(
        f"seed {seed}: reward {first:.3f} -> {last:.3f} (first/last {WINDOW} steps), p(correct) {warm.p0:.3f} -> {p1:.3f}"
    )
    assert p1 - warm.p0 > MIN_P_RISE
    # the stage's own p(correct) metrics agree with this independent computation
    assert meta["train_p_correct_before"] == pytest.approx(warm.p0, abs=1e-4)
    assert meta["train_p_correct_after"] == pytest.approx(p1, abs=1e-4)
    assert not list(out.glob(".hf.tmp-*")), "no half-written model left behind"


@pytest.mark.slow
def test_rerun_resumes_from_last_checkpoint(warm, tmp_path):
    from super3.tiny import rl

    out = tmp_path / "out"
    first = rl.run(_train_cfg(3, steps=4, val_period=0), warm.inputs, out)
    assert first["resumed_from"] is None
    assert (out / "checkpoints" / "checkpoint-16").is_dir()  # 4 GRPO steps x 4 optimizer steps

    cfg = _train_cfg(3, steps=6, val_period=0)
    cfg["checkpoint"]["save_interval"] = 2
    second = rl.run(cfg, warm.inputs, out)
    assert second["resumed_from"].endswith("checkpoint-16")
    curve = json.loads((out / "metrics.json").read_text())["reward_curve"]
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5, 6]  # steps 1-4 come from the checkpoint's log
    assert second["steps"] == 6


def test_empty_val_split_validates_on_the_training_prompts(warm, tmp_path, capsys):
    """A closed task whose data holds nothing out (the tiny chain) validates on its training prompts, says
    so in the log and records it; a data dir with val rows validates on those."""
    import shutil

    from super3.tiny import rl

    data = tmp_path / "data"
    shutil.copytree(warm.inputs["data"].path, data)
    (data / "val.jsonl").write_text("")
    inputs = {**warm.inputs, "data": types.SimpleNamespace(path=data, metadata={})}
    meta = rl.run(_train_cfg(5, steps=1, val_period=0), inputs, tmp_path / "out")
    assert meta["val_source"] == "train" and meta["num_val_prompts"] == RL_PROMPTS
    assert meta["val_p_correct_before"] == meta["train_p_correct_before"]
    assert f"validating on the {RL_PROMPTS} training prompts" in capsys.readouterr().out
    held_out = rl.run(_train_cfg(5, steps=1, val_period=0), warm.inputs, tmp_path / "out2")
    assert held_out["val_source"] == "val" and held_out["num_val_prompts"] == 10


def test_run_rejects_missing_inputs(tmp_path):
    from super3.tiny import rl

    with pytest.raises(UserError, match="'data' input"):
        rl.run(_train_cfg(1), {"model": types.SimpleNamespace(path=tmp_path, metadata={})}, tmp_path / "out")


def test_best_policy_keeps_the_best_validated_weights():
    import torch
    from super3.tiny.rl import BestPolicy

    layer = torch.nn.Linear(2, 2)
    best = BestPolicy()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        best.offer(layer, 0.3, 10)
        layer.weight.fill_(2.0)
        best.offer(layer, 0.2, 20)  # worse: not kept
        assert best.step == 10 and float(best.state["weight"][0, 0]) == 1.0
        layer.weight.fill_(3.0)
        best.offer(layer, 0.3, 30)  # a tie: the later, longer-trained policy wins
        best.offer(layer, None, 40)  # no validation prompts: nothing to judge
    assert best.step == 30 and float(best.state["weight"][0, 0]) == 3.0
