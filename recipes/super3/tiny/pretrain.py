"""Tiny-backend pretraining: a Super-shaped NemotronH trained on CPU from the bin/idx blend that
data prep wrote.

Why it exists: the `tiny` pipeline runs every stage for real on a 2-core machine, so the numbers it
publishes (loss curve, valid loss) are measured, and the checkpoint/resume behaviour matches what a
requeued Slurm job needs.
"""

from __future__ import annotations

import pathlib
from typing import Any

from nemotron.errors import UserError

from . import data as tiny_data
from . import model as tiny_model
from . import training

ASSET_TOKENIZER = pathlib.Path(__file__).resolve().parents[1] / "assets" / "tiny" / "tokenizer.json"


def resolve_tokenizer_path(artifact: Any) -> pathlib.Path:
    """Where a data artifact's tokenizer lives: ``metadata.tokenizer.path`` (absolute or relative to
    the artifact), else a ``tokenizer.json`` inside it, else the tiny asset shipped with the recipes."""
    meta = (getattr(artifact, "metadata", None) or {}).get("tokenizer") or {}
    base = pathlib.Path(artifact.path)
    candidates = []
    if meta.get("path"):
        p = pathlib.Path(meta["path"])
        candidates.append(p if p.is_absolute() else base / p)
    candidates += [base / "tokenizer.json", base / "tokenizer", ASSET_TOKENIZER]
    for c in candidates:
        if c.exists():
            return c
    raise UserError(f"no tokenizer found for data at {base}", hint="data prep records it in metadata.tokenizer.path")


def _sections(train_cfg: dict[str, Any]) -> tuple[dict, dict, int]:
    train = train_cfg.get("train") or {}
    if not train:
        raise UserError("train.yaml has no train: section")
    micro = int(train.get("micro_batch_size", 1))
    gbs = int(train.get("global_batch_size", micro))
    if gbs % micro:
        raise UserError(
            f"train.global_batch_size ({gbs}) is not a multiple of train.micro_batch_size ({micro})",
            hint="the tiny backend runs one process: accumulation steps = global / micro",
        )
    return train, train_cfg.get("optimizer") or {}, gbs // micro


def save_dirs(
    train_cfg: dict[str, Any], output_dir: pathlib.Path, model_input: Any = None
) -> tuple[pathlib.Path, pathlib.Path | None]:
    """(where checkpoints go, where to resume from when that is empty).

    ``checkpoint.load`` wins; otherwise with ``checkpoint.from_model: full`` the input model's own
    checkpoints (``<model artifact>/checkpoints``) are continued: iteration, optimizer and LR schedule
    (phase 2 after phase 1). ``weights`` (default) starts at iteration 0 from the input weights.
    """
    ck = train_cfg.get("checkpoint") or {}
    save = pathlib.Path(ck["save"]) if ck.get("save") else output_dir / "checkpoints"
    load = pathlib.Path(ck["load"]) if ck.get("load") else None
    if load is None and model_input is not None and ck.get("from_model") == "full":
        load = pathlib.Path(model_input.path) / "checkpoints"
        if training.latest_checkpoint(load) is None:
            raise UserError(
                f"checkpoint.from_model=full but the input model has no checkpoints in {load}",
                hint="use checkpoint.from_model=weights, or pass a model produced by a tiny training stage",
            )
    return save, load


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Pretrain (or continue pretraining ``inputs["model"]``) and write ``output_dir/hf``.

    Returns artifact metadata: iteration, initial/final train loss, valid loss, model shape.
    """
    tiny_model.set_threads()
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train, _, n_micro = _sections(train_cfg)
    seed = int(train_cfg.get("seed", 1234))
    seq = int(train["seq_length"])
    micro = int(train.get("micro_batch_size", 1))

    if "data" not in inputs or inputs["data"] is None:
        raise UserError("pretrain needs a data input (run.data)", hint="run data_prep.pretrain first")
    data = inputs["data"]
    if inputs.get("model") is not None:
        model, tokenizer = tiny_model.load_model(inputs["model"].path)
        source = "continued"
    else:
        tokenizer = tiny_model.load_tokenizer(resolve_tokenizer_path(data))
        model = tiny_model.new_model(train_cfg.get("model") or {}, seed=seed, tokenizer=tokenizer)
        source = "scratch"
    vocab = model.config.vocab_size

    blend = tiny_data.read_blend(data.path)
    if not blend.get("train"):
        raise UserError(f"blend.json in {data.path} has no train split")
    sampler = tiny_data.WindowSampler(blend["train"], seq, seed)
    _check_vocab(sampler, vocab)
    valid_blend = blend.get("valid") or []
    valid_batches: list[dict] = []
    if valid_blend and int(train.get("eval_iters", 0)) > 0:
        vs = tiny_data.WindowSampler(valid_blend, seq, seed)
        valid_batches = [vs.batch(i, micro, stream=1) for i in range(int(train["eval_iters"]))]

    def micro_batches(step: int) -> list[dict]:
        return [sampler.batch(step * n_micro + j, micro) for j in range(n_micro)]

    save_dir, load_dir = save_dirs(train_cfg, output_dir, inputs.get("model"))
    training.log(
        f"pretrain: {source} model, {tiny_model.param_count(model)} params, pattern "
        f"{model.config.hybrid_override_pattern}, {train['train_iters']} iters x {n_micro * micro} x {seq} tokens"
    )
    state = training.train_loop(
        model=model,
        train_cfg=train_cfg,
        micro_batches=micro_batches,
        valid_batches=valid_batches,
        save_dir=save_dir,
        load_dir=load_dir,
    )
    return finish(model, tokenizer, state, output_dir, {"init": source})


def finish(model: Any, tokenizer: Any, state: Any, output_dir: pathlib.Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Write ``hf/`` and ``metrics.json``; build the artifact metadata (shared with SFT)."""
    hf = tiny_model.save_model(model, tokenizer, output_dir / "hf")
    summary = training.summarize(state)
    metrics = {**summary, **extra, "train_loss": state.train_loss, "valid_loss": state.valid_loss, "lr": state.lr}
    training.write_json_atomic(output_dir / "metrics.json", metrics)
    return {
        **summary,
        **extra,
        "format": "hf",
        "hf_dir": "hf",
        "backend": "tiny",
        "params": tiny_model.param_count(model),
        "hybrid_pattern": model.config.hybrid_override_pattern,
        "layers": tiny_model.layer_counts(model),
        "tokenizer": {"path": str(hf), "vocab_size": len(tokenizer)},
    }


def _check_vocab(sampler: tiny_data.WindowSampler, vocab: int) -> None:
    """Token ids beyond the embedding table mean the data was tokenized with another tokenizer."""
    for d in sampler.datasets:
        top = int(d.tokens[: min(len(d), 1_000_000)].max())
        if top >= vocab:
            raise UserError(
                f"{d.prefix} has token id {top} but the model vocabulary is {vocab}",
                hint="tokenize the data with the tiny tokenizer (data_prep.pretrain -c tiny)",
            )
