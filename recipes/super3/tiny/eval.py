"""Tiny-backend eval stage: lm-eval on the local tiny tasks for every stage's model, side by side.

The models are the eval's inputs (see ``models_to_evaluate``): the optional ``pretrain_model`` and
``sft_model``, the ``model`` under test (the RL model in the tiny chain; float32 on CPU), and each
quantized model in the optional ``quantized`` input. Each is wrapped in an lm-eval ``HFLM`` built from
the loaded model object and run with ``lm_eval.simple_evaluate`` on ``eval.tasks``, whose YAMLs come
from ``tasks/`` next to this file (``TaskManager(include_path=...)``). Nothing is downloaded: the task
data is committed JSONL read by ``tasks/tiny_tasks.py`` and ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``
are set. Quantized models load through ``quantize.load_quantized``, so their activation fake-quant
(ModelOpt quantizers, NVFP4 CPU emulation) is active during eval.

Outputs in ``output_dir``: ``results.json`` in the project's one eval-results format and ``results.md``
(task x model table), both from ``nemotron.node.results``. The gate is that module's direction-aware
check (``eval.tolerance``; each model against the model it was made from, on the primary metric of
``PRIMARY_METRICS``): if any model regressed beyond it, the stage writes its results and then raises
``UserError`` (the stage fails and publishes nothing).
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from super3.tiny.training import write_text_atomic

log = get_logger()  # the node logger: its lines reach the job log

TASKS_DIR = pathlib.Path(__file__).resolve().parent / "tasks"
RESULTS_MD = "results.md"
MAX_LENGTH = 2048  # context window lm-eval uses for rolling log-likelihoods

# task -> (primary metric, lm-eval filter) used for the table and the tolerance gate.
PRIMARY_METRICS: dict[str, tuple[str, str]] = {
    "tiny_addition": ("exact_match", "strip"),
    "tiny_prose_ppl": ("byte_perplexity", "none"),
}


# --------------------------------------------------------------------------------------------------
# running lm-eval


def _offline() -> None:
    """No network: the tasks read committed JSONL and models are local directories."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def task_manager():
    """An lm-eval ``TaskManager`` indexing only the tiny tasks in ``tasks/``.

    lm-eval's built-in tasks are left out: they need Hub downloads (this stage runs offline) and
    indexing their ~10k YAML files costs seconds per model evaluated.
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def evaluate(
    model: Any, tokenizer: Any, tasks: list[str], *, limit: int | None, batch_size: int, manager=None
) -> dict[str, Any]:
    """Run lm-eval on one loaded model; returns ``{"metrics": {task: {metric: value}}, "higher_is_better",
    "examples"}`` (a few addition generations, for eyeballing).

    ``apply_chat_template=True``: generation prompts are rendered with the tokenizer's chat template
    (the pipeline's chat format); rolling log-likelihood tasks score the raw text either way.
    """
    _offline()
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    manager = manager or task_manager()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise UserError(f"unknown eval task(s) {unknown}", hint=f"tiny tasks: {', '.join(PRIMARY_METRICS)}")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", max_length=MAX_LENGTH)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks),
        limit=limit,
        task_manager=manager,
        apply_chat_template=True,
        bootstrap_iters=0,
        log_samples=True,
    )
    metrics: dict[str, dict[str, float]] = {}
    for task, values in out["results"].items():
        metrics[task] = {}
        for key, value in values.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            metrics[task][metric if filt in ("none", PRIMARY_METRICS.get(task, ("", ""))[1]) else key] = float(value)
    examples = {
        task: [
            {
                "prompt": s["arguments"][0][0] if s.get("arguments") else None,
                "target": s.get("target"),
                "output": s.get("filtered_resps"),
            }
            for s in samples[:3]
        ]
        for task, samples in (out.get("samples") or {}).items()
        if task == "tiny_addition"
    }
    return {"metrics": metrics, "higher_is_better": out.get("higher_is_better", {}), "examples": examples}


def primary_metric(task: str, result: dict[str, Any]) -> tuple[str, bool]:
    """``(metric name, higher is better)`` gating ``task``: ``PRIMARY_METRICS`` or lm-eval's first metric."""
    hib = result["higher_is_better"].get(task, {})
    if task in PRIMARY_METRICS:
        name = PRIMARY_METRICS[task][0]
    else:
        names = list(result["metrics"].get(task, {}))
        if not names:
            raise UserError(f"lm-eval reported no metric for task {task}")
        name = names[0]
    return name, bool(hib.get(name, True))


# --------------------------------------------------------------------------------------------------
# which models


def quantized_models(artifact: Any) -> list[dict[str, Any]]:
    """The quantized model directories in a quantized-model artifact, with table labels.

    The tiny quantize stage writes one directory per config (listed in its metadata ``models`` and
    each holding ``quant_summary.json``); an artifact that is itself one HF directory also works.
    Labels are the format (``fp8``, ``nvfp4``) when unique, else ``fp8_conservative`` etc.
    """
    root = pathlib.Path(artifact.path)
    entries: list[dict[str, Any]] = []
    listed = (getattr(artifact, "metadata", None) or {}).get("models") or {}
    if listed:
        from nemotron.artifacts.quantized import quantized_exports  # the one reader of this metadata

        for export in quantized_exports(artifact):
            entries.append(
                {
                    "config": export.config,
                    "path": export.path,
                    "format": export.format,
                    "variant": export.details.get("variant"),
                }
            )
    elif (root / "config.json").exists():
        entries.append({"config": root.name, "path": root, "format": None, "variant": None})
    else:
        for summary in sorted(root.glob("*/quant_summary.json")):
            info = json.loads(summary.read_text())
            entries.append(
                {
                    "config": info.get("config", summary.parent.name),
                    "path": summary.parent,
                    "format": info.get("format"),
                    "variant": info.get("variant"),
                }
            )
    if not entries:
        raise UserError(
            f"no quantized model found in {root}", hint="pass a quantized-model artifact from the quantize stage"
        )
    for e in entries:
        if not (e["path"] / "config.json").exists():
            raise UserError(
                f"quantized model directory {e['path']} has no config.json", hint="re-run the quantize stage"
            )
    formats = [e["format"] for e in entries]
    for e in entries:
        fmt = e["format"]
        e["label"] = (
            fmt
            if fmt and formats.count(fmt) == 1
            else (f"{fmt}_{e['variant']}" if fmt and e["variant"] else e["config"])
        )
    return entries


# --------------------------------------------------------------------------------------------------
# stage entry


def _ref(artifact: Any, fallback: str) -> str:
    name, version = getattr(artifact, "name", None), getattr(artifact, "version", None)
    return f"{name}:v{version}" if name and version else fallback


def _stage(artifact: Any, fallback: str) -> str:
    stage = getattr(getattr(artifact, "run", None), "stage", None)
    return stage if stage and stage != "unknown" else fallback


def _parent(artifact: Any) -> str | None:
    """``name:vN`` of the model this artifact was made from (its ``model`` input), if recorded."""
    return (getattr(artifact, "input_slots", None) or {}).get("model")


def models_to_evaluate(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Every model of the eval's inputs, in recipe order, each with the label of the model it came from.

    Order: ``pretrain_model``, ``sft_model``, ``model``, then the quantized models. A model's baseline
    is the evaluated model its lineage names as its ``model`` input, else the model before it (for a
    quantized model: ``model``); the pretrained model is never one (``REFERENCE_SLOTS``). The same
    artifact given twice is evaluated once.
    """
    from nemotron.node.results import COMPARE_SLOTS, REFERENCE_SLOTS

    runs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}  # ref -> label
    references: set[str] = set()
    for slot in COMPARE_SLOTS + ("model",):
        art = inputs.get(slot)
        if art is None:
            continue
        ref = _ref(art, f"{slot}:{pathlib.Path(art.path).name}")
        if ref in seen:
            continue
        label = _stage(art, "model" if slot == "model" else slot.removesuffix("_model"))
        if label in {r["label"] for r in runs}:
            label = f"{label}_{slot}"
        baseline = seen.get(_parent(art) or "") or (runs[-1]["label"] if runs else None)
        baseline = None if baseline in references else baseline
        if slot in REFERENCE_SLOTS:
            references.add(label)
        runs.append(
            {
                "label": label,
                "name": ref,
                "stage": _stage(art, slot),
                "path": pathlib.Path(art.path),
                "baseline": baseline,
                "quantized": False,
            }
        )
        seen[ref] = label
    main = runs[-1]["label"]
    if inputs.get("quantized") is not None:
        art = inputs["quantized"]
        ref = _ref(art, "quantized")
        baseline = seen.get(_parent(art) or "", main)
        for entry in quantized_models(art):
            runs.append(
                {
                    "label": entry["label"],
                    "name": f"{ref}/{entry['config']}",
                    "stage": _stage(art, "quantize"),
                    "path": entry["path"],
                    "baseline": baseline,
                    "quantized": True,
                }
            )
    return runs


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Evaluate every input model; write ``results.json`` / ``results.md``; raise if a model regressed."""
    _offline()
    from nemotron.node import results as R
    from super3.tiny import model as tiny_model
    from super3.tiny import quantize

    started = time.monotonic()
    section = dict(train_cfg.get("eval") or {})
    tasks = list(section.get("tasks") or [])
    if not tasks:
        raise UserError("eval.tasks is empty", hint=f"tiny tasks: {', '.join(PRIMARY_METRICS)}")
    limit = section.get("limit")
    batch_size = int(section.get("batch_size") or 8)
    tolerance = section.get("tolerance", 0.05)  # a number or {task: number}
    if inputs.get("model") is None:
        raise UserError("the eval stage needs a model input", hint="set run.model to a tiny model artifact")
    tiny_model.set_threads()
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manager = task_manager()

    models: list[dict[str, Any]] = []
    primary: dict[str, dict[str, Any]] = {}
    for entry in models_to_evaluate(inputs):
        t0 = time.monotonic()
        if entry["quantized"]:
            model, tokenizer, _ = quantize.load_quantized(entry["path"])
        else:
            model, tokenizer = tiny_model.load_model(entry["path"])
        raw = evaluate(model, tokenizer, tasks, limit=limit, batch_size=batch_size, manager=manager)
        del model
        for task in tasks:
            if task not in primary:
                metric, higher = primary_metric(task, raw)
                primary[task] = {"metric": metric, "higher_is_better": higher}
        seconds = round(time.monotonic() - t0, 2)
        models.append(
            R.model_entry(
                entry["label"],
                entry["name"],
                entry["stage"],
                raw["metrics"],
                entry["baseline"],
                path=str(entry["path"]),
                examples=raw["examples"],
                seconds=seconds,
            )
        )
        scores = R.primary_scores(models[-1], primary)
        log.info("evaluated %s (%s): %s in %.1f s", entry["label"], entry["name"], scores, seconds)

    import lm_eval

    results = R.build_results(
        models,
        primary,
        tolerance,
        backend="tiny",
        tasks=tasks,
        limit=limit,
        lm_eval_version=getattr(lm_eval, "__version__", "unknown"),
        runtime_s=round(time.monotonic() - started, 2),
    )
    R.write_results(output_dir, results)
    write_text_atomic(output_dir / RESULTS_MD, R.render_markdown(results, "Tiny eval: every stage's model"))
    log.info("results:\n%s", R.render_table(results))
    failure = R.gate_failure(results, output_dir / RESULTS_MD)
    if failure is not None:
        raise failure
    return {"backend": "tiny", "tasks": tasks, "limit": limit, **R.metadata_view(results)}
