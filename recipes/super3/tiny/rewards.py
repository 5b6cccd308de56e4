"""Verifiable rewards for the tiny RL stage, named like the full-scale config's ``env.name``.

The full recipe's RLVR stage scores math answers in a NeMo-RL environment called ``math``; the tiny
backend keeps the same name so one config key selects the reward at both scales. Scoring is pure
string work (no model, no sandbox) so it is unit tested directly and cannot be gamed: the completion
counts as correct only when the text the model wrote before ending its turn is exactly the answer.

Scores are binary, as in NeMo-RL's math environment (NVIDIA-NeMo/RL super-v3@9c77bef6be4b
``nemo_rl/environments/math_environment.py``: ``hf_math_verify`` scores 1.0 or 0.0 and the rewards are
multiplied by ``is_end``): 1.0 for the exact answer, 0.0 otherwise, including a completion that never
ended its turn (cut off at ``max_new_tokens``). An earlier partial credit (0.1 for
a well-formed wrong integer) made RL worse: with group-normalised advantages, a group of wrong integers
plus one malformed answer pushes every wrong integer up with a full-size advantage. Measured on the tiny
chain's SFT model (greedy addition 0.76, same RL settings): with the credit 0.76 -> 0.66, binary 0.76 -> 0.79.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

END_OF_TURN = "<|im_end|>"

RewardFunc = Callable[..., list[float]]


def completion_text(completion: str | Sequence[dict[str, Any]]) -> str:
    """The generated text of one completion: TRL passes a string, or a message list for chat prompts."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


def extract_answer(completion: str) -> str:
    """The model's answer: everything before the first end-of-turn marker, whitespace stripped."""
    return completion.split(END_OF_TURN, 1)[0].strip()


def score_answer(completion: str, answer: str, *, terminated: bool = True) -> float:
    """Score one completion against the reference ``answer`` (see the module docstring for the scale)."""
    if not terminated:
        return 0.0
    return 1.0 if extract_answer(completion) == answer.strip() else 0.0


def ended_turn(ids: Iterable[int], end_token_ids: Iterable[int]) -> bool:
    """True when a completion's token ids contain an end-of-turn/end-of-text token (not cut off)."""
    ends = set(end_token_ids)
    return any(token in ends for token in ids)


def math_reward(
    prompts: Sequence[Any],
    completions: Sequence[str | Sequence[dict[str, Any]]],
    answer: Sequence[str],
    completion_ids: Sequence[Sequence[int]] | None = None,
    end_token_ids: Iterable[int] | None = None,
    **_: Any,
) -> list[float]:
    """Exact-answer reward in TRL's reward-function shape: one float per completion.

    TRL calls it with the dataset's extra columns as keyword lists (``answer``) plus ``completion_ids``
    and trainer internals, which are ignored. When ``end_token_ids`` is given, a completion whose ids
    contain none of them was truncated and scores 0 (TRL decodes with ``skip_special_tokens``, so the
    text alone cannot tell a finished ``7`` from a cut-off one).
    """
    if len(completions) != len(answer):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    ends = list(end_token_ids) if end_token_ids is not None else None
    scores = []
    for index, (completion, reference) in enumerate(zip(completions, answer, strict=True)):
        terminated = True
        if ends is not None and completion_ids is not None:
            terminated = ended_turn(completion_ids[index], ends)
        scores.append(score_answer(completion_text(completion), str(reference), terminated=terminated))
    return scores


REWARDS: dict[str, RewardFunc] = {"math": math_reward}


def reward_function(env_name: str, end_token_ids: Iterable[int] | None = None) -> RewardFunc:
    """The TRL reward function for ``env.name`` (a partial, so it pickles and TRL logs its name).

    Raises ``UserError`` for environments the tiny backend has no verifier for (code, swe,
    reward_model need sandboxes or a reward model that only the full-scale backend provides).
    """
    if env_name not in REWARDS:
        from nemotron.errors import UserError

        raise UserError(
            f"the tiny backend has no reward for env.name={env_name!r}",
            hint=f"use one of: {', '.join(sorted(REWARDS))}",
        )
    ends = list(end_token_ids) if end_token_ids is not None else None
    return functools.partial(REWARDS[env_name], end_token_ids=ends)
