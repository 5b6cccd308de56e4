"""``data prep rl``: RL records -> ``train.jsonl`` / ``val.jsonl`` + ``manifest.json``.

Two row formats (``data.format``), one per NeMo-RL entry script:

- ``prompt_answer``: ``{"id", "prompt", "answer", ...keep_fields}`` (answers as strings) for NeMo-RL's
  math environment (``examples/run_grpo.py``, ``ResponseDataset`` with input_key/output_key).
- ``nemo_gym``: NeMo-Gym rows for ``run_grpo_nemo_gym.py``: ``responses_create_params.input`` (the
  chat messages), ``agent_ref`` (``{"type": "responses_api_agents", "name": <agent>}``, the environment
  that rolls out and scores the row; from the row, else the dataset's ``agent`` in the blend) and the
  verifier's own fields (``expected_answer`` for built rows). Facts: NVIDIA-NeMo/Gym super-v3
  @b9bd68548444 nemo_gym/base_resources_server.py (BaseRunRequest), nemo_gym/rollout_collection.py
  (``row["agent_ref"]["name"]``), resources_servers/math_with_judge/data/example.jsonl.
The split is by content hash of the prompt, so a prompt that appears twice never lands in both
train and val. Shards write their own parts (``shards/<key>/{train,val}.jsonl``); finalization
concatenates them in plan order, so the result does not depend on workers or interruptions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import atomic_open
from nemotron.data_prep.common import validate
from nemotron.data_prep.plan import Plan, Shard
from nemotron.data_prep.runner import (
    SHARDS,
    Counters,
    ShardJob,
    prepare_output_dir,
    run_stage,
    shard_result,
)
from nemotron.data_prep.sources import BadRows, ChunkReader
from nemotron.data_prep.splits import make_assigner

STAGE = "rl"
FILES = {"train": "train.jsonl", "valid": "val.jsonl"}


def prepare_rl(
    cfg: Any,
    output_dir: str | Path,
    progress: bool = True,
    *,
    rank: int | None = None,
    world_size: int | None = None,
) -> dict[str, Any]:
    """Validate and split prompt/answer records into ``output_dir``; returns the artifact metadata.

    ``cfg`` is a validated ``DataPrepRlConfig`` (a plain dict is validated here). The result is the
    manifest (train/val file names, counts, fields, sha256s, plan hash) plus ``finalized``,
    ``publish`` and ``run``.
    """
    from nemotron.config.schemas.data_prep import DataPrepRlConfig

    cfg = validate(cfg, DataPrepRlConfig)
    out = prepare_output_dir(output_dir)
    d = cfg.data
    settings = {
        "prompt_field": d.prompt_field,
        "answer_field": d.answer_field,
        "id_field": d.id_field,
        "keep_fields": list(d.keep_fields),
        "format": d.format,
        "prompt_template": d.prompt_template,
        "agents": [spec.agent for spec in d.inputs],
        "fractions": {"valid": d.valid_fraction},
        "seed": cfg.seed,
        "format_version": 2,
    }
    return run_stage(
        STAGE, cfg, out, settings, process_shard, _finalize, rank=rank, world_size=world_size, progress=progress
    )


def _text(value: Any) -> str | None:
    """Prompts/answers as strings: numbers are accepted (answers are often numeric), others are not."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


GYM_INPUT = "responses_create_params"
GYM_AGENT = "agent_ref"
GYM_AGENT_TYPE = "responses_api_agents"


def _messages_ok(messages: Any) -> bool:
    """``responses_create_params.input``: a non-empty string, or a non-empty list of role/content messages."""
    if isinstance(messages, str):
        return bool(messages.strip())
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in messages)
    )


def gym_row(record: dict[str, Any], settings: dict[str, Any], agent: str | None) -> tuple[dict[str, Any] | None, str]:
    """One NeMo-Gym row from a record, or ``(None, reason)``.

    A record that already has ``responses_create_params`` passes through (its ``agent_ref`` kept, or the
    dataset's agent filled in); otherwise the row is built from the prompt/answer fields.
    """
    if GYM_INPUT in record:
        params = record[GYM_INPUT]
        if not isinstance(params, dict) or not _messages_ok(params.get("input")):
            return None, "bad_responses_create_params"
        row = dict(record)
    else:
        pf, af = settings["prompt_field"], settings["answer_field"]
        if pf not in record or af not in record:
            return None, "missing_field"
        prompt, answer = _text(record[pf]), _text(record[af])
        if prompt is None or answer is None:
            return None, "not_a_string"
        if not prompt.strip() or not answer.strip():
            return None, "empty_text"
        content = settings["prompt_template"].replace("{prompt}", prompt)
        row = {GYM_INPUT: {"input": [{"role": "user", "content": content}]}, "expected_answer": answer}
        for name in settings["keep_fields"]:
            if name in record and name not in row:
                row[name] = record[name]
    ref = row.get(GYM_AGENT)
    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]:
        return row, ""
    if ref is not None and not isinstance(ref, dict):
        return None, "bad_agent_ref"
    if not agent:
        return None, "no_agent"
    row[GYM_AGENT] = {"type": GYM_AGENT_TYPE, "name": agent}
    return row, ""


def read_row(record: Any) -> tuple[str, str, str | None]:
    """``(prompt, answer, agent)`` of one rl-data row in either format, for readers other than NeMo-RL.

    prompt_answer rows give ``prompt`` / ``answer``; NeMo-Gym rows give the last user message of
    ``responses_create_params.input`` and ``expected_answer`` (the field the math verifiers read), and
    their ``agent_ref.name``. Raises ``ValueError`` naming what is missing.
    """
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if GYM_INPUT not in record:
        prompt, answer = _text(record.get("prompt")), _text(record.get("answer"))
        if prompt is None or answer is None:
            raise ValueError("neither a {prompt, answer} row nor a NeMo-Gym row")
        return prompt, answer, None
    messages = (record[GYM_INPUT] or {}).get("input") if isinstance(record[GYM_INPUT], dict) else None
    if not _messages_ok(messages):
        raise ValueError(f"{GYM_INPUT}.input holds no messages")
    if isinstance(messages, str):
        prompt = messages
    else:
        users = [m for m in messages if m.get("role") == "user"]
        prompt = _text((users or messages)[-1].get("content"))
    answer = _text(record.get("expected_answer"))
    if prompt is None or answer is None:
        raise ValueError("a NeMo-Gym row without a text user message or expected_answer")
    ref = record.get(GYM_AGENT)
    return prompt, answer, ref.get("name") if isinstance(ref, dict) else None


def _gym_split_key(row: dict[str, Any]) -> str:
    return json.dumps(row[GYM_INPUT], sort_keys=True, ensure_ascii=False)


def process_shard(job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    s = job.settings
    pf, af, idf, keep = s["prompt_field"], s["answer_field"], s["id_field"], s["keep_fields"]
    dataset = s["dataset_names"][shard.dataset]
    gym = s["format"] == "nemo_gym"
    agent = s["agents"][shard.dataset]
    assign = make_assigner(s["seed"], s["fractions"])
    bad = BadRows()
    fields = [pf, af, *([idf] if idf else []), *keep] + ([GYM_INPUT, GYM_AGENT] if gym else [])
    reader = ChunkReader(shard.piece, fields, bad)
    base = Path(job.output_dir) / SHARDS / shard.key
    counts = {"train": 0, "valid": 0}
    with atomic_open(base / FILES["train"]) as train, atomic_open(base / FILES["valid"]) as valid:
        writers = {"train": train, "valid": valid}
        for records, nbytes in reader.chunks():
            docs = 0
            for where, record in records:
                if gym:
                    row, reason = gym_row(record, s, agent)
                    if row is None:
                        bad.add(reason, where)
                        continue
                    split = assign(_gym_split_key(row))
                    data = json.dumps(row, ensure_ascii=False) + "\n"
                    writers[split].write(data.encode("utf-8", "surrogatepass"))
                    counts[split] += 1
                    docs += 1
                    continue
                if pf not in record or af not in record:
                    bad.add("missing_field", where)
                    continue
                prompt, answer = _text(record[pf]), _text(record[af])
                if prompt is None or answer is None:
                    bad.add("not_a_string", where)
                    continue
                if not prompt.strip() or not answer.strip():
                    bad.add("empty_text", where)
                    continue
                rid = record.get(idf) if idf else None
                if rid is None:
                    digest = hashlib.sha1(f"{prompt}\x00{answer}".encode("utf-8", "surrogatepass")).hexdigest()
                    rid = f"{dataset}-{digest[:16]}"
                row = {"id": str(rid), "prompt": prompt, "answer": answer}
                for name in keep:
                    if name in record and name not in row:
                        row[name] = record[name]
                split = assign(prompt)
                writers[split].write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass"))
                counts[split] += 1
                docs += 1
            counters.add(nbytes, docs, 0)
    outputs = {
        f"{SHARDS}/{shard.key}/{FILES[name]}": {"size": w.size, "sha256": w.hexdigest()} for name, w in writers.items()
    }
    splits = {name: {"records": n} for name, n in counts.items()}
    return shard_result(job, shard, outputs, reader, bad, splits, docs=counts["train"] + counts["valid"], tokens=0)


def _finalize(plan: Plan, receipts: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """Concatenate shard parts in plan order into train.jsonl / val.jsonl."""
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name, filename in FILES.items():
        with atomic_open(out / filename) as writer:
            for shard in plan.shards:
                with open(out / SHARDS / shard.key / filename, "rb") as part:
                    while block := part.read(1 << 22):
                        writer.write(block)
        files[filename] = {"size": writer.size, "sha256": writer.hexdigest()}
        counts[name] = sum(r["stats"]["splits"][name]["records"] for r in receipts)
    s = plan.settings
    return {
        "kind": "rl-data",
        "format": "jsonl",
        "row_format": s["format"],
        "agents": sorted({a for a in s["agents"] if a}),
        "train": FILES["train"],
        "val": FILES["valid"],
        "train_path": str(out / FILES["train"]),
        "val_path": str(out / FILES["valid"]),
        "num_train": counts["train"],
        "num_val": counts["valid"],
        "fields": [GYM_INPUT, GYM_AGENT]
        if s["format"] == "nemo_gym"
        else ["id", "prompt", "answer", *s["keep_fields"]],
        "files": files,
    }
