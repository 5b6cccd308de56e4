"""Tiny-backend eval stage: lm-eval on the local tiny tasks, bf16 model vs its FP8 / NVFP4 versions.

Every model (the ``model`` input, called "bf16" after the recipe's unquantized baseline although the
tiny backend computes in float32, and each quantized model found in the ``quantized`` input) is wrapped
in an lm-eval ``HFLM`` built from the loaded model object and run with ``lm_eval.simple_evaluate`` on
``eval.tasks``, whose YAMLs come from ``tasks/`` next to this file (``TaskManager(include_path=...)``).
Nothing is downloaded: the task data is committed JSONL read by ``tasks/tiny_tasks.py`` and
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are set.

Outputs in ``output_dir``: ``results.json`` (every metric of every model, the gate checks) and
``results.md`` (task x model table). Quantized models load through ``quantize.load_quantized``, so
their activation fake-quant (ModelOpt quantizers, NVFP4 CPU emulation) is active during eval.

Tolerance (``eval.tolerance``, one number, checked per quantized model and task on the task's primary
metric, see ``PRIMARY_METRICS``):
- higher-is-better metrics (accuracy, exact match; scores in [0, 1]) may drop by at most ``tolerance``
  *absolute*: ``bf16 - quantized <= tolerance`` (0.05 = five points);
- lower-is-better metrics (perplexities) may rise by at most ``tolerance`` *relative*:
  ``quantized / bf16 - 1 <= tolerance`` (0.05 = 5 % higher perplexity).
Why two rules: accuracy is already a fraction, and a relative rule would make a 0.02 -> 0.01 change on
a weak model "50 %"; perplexity has no fixed scale, so only a ratio means the same thing everywhere.
If any check fails the stage writes its results and then raises ``UserError`` (the stage fails and
publishes nothing).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import time
from typing import Any

from nemotron.errors import UserError
from super3.tiny.training import write_sorted_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

TASKS_DIR = pathlib.Path(__file__).resolve().parent / "tasks"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
BASELINE = "bf16"
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
# tolerance gate and tables


def check_tolerance(results: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """One check per (quantized model, task) on the task's primary metric (rules in the module doc)."""
    checks = []
    base = results["models"][BASELINE]
    for label, model in results["models"].items():
        if label == BASELINE:
            continue
        for task, (metric, higher) in results["primary"].items():
            ref, val = base["metrics"][task][metric], model["metrics"][task][metric]
            if higher:
                rule, degradation = "absolute drop", ref - val
            else:
                rule = "relative increase"
                degradation = (val / ref - 1.0) if ref > 0 else (0.0 if val <= ref else float("inf"))
            checks.append(
                {
                    "model": label,
                    "task": task,
                    "metric": metric,
                    "rule": rule,
                    BASELINE: ref,
                    "value": val,
                    "degradation": degradation,
                    "tolerance": tolerance,
                    "passed": bool(degradation <= tolerance),
                }
            )
    return checks


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the task x model table (primary metric; quantized cells show the change)."""
    labels = results.get("columns") or list(results["models"])  # results.json is written with sorted keys
    header = ["task (metric)", *labels]
    by_key = {(c["model"], c["task"]): c for c in results.get("checks", [])}
    rows = []
    for task, (metric, higher) in results["primary"].items():
        arrow = "higher better" if higher else "lower better"
        row = [f"{task} ({metric}, {arrow})"]
        for label in labels:
            cell = _fmt(results["models"][label]["metrics"][task][metric])
            check = by_key.get((label, task))
            if check:
                delta = check["degradation"]
                change = f"{-delta:+.4f}" if check["rule"] == "absolute drop" else f"{delta * 100:+.2f}%"
                cell += f" ({change}{'' if check['passed'] else ' FAIL'})"
            row.append(cell)
        rows.append(row)
    return header, rows


def render_markdown(results: dict[str, Any]) -> str:
    header, rows = table_rows(results)
    lines = [
        "# Tiny eval: bf16 vs quantized",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"Tolerance {results['tolerance']}: {results['tolerance_rule']}",
        f"Gate: {'PASSED' if results['passed'] else 'FAILED'}; limit per task: {results['limit']}; "
        f"bf16 = unquantized model (float32 on CPU).",
        "",
    ]
    return "\n".join(lines)


def show_results(path: str | os.PathLike[str]) -> str:
    """The results table as rich-rendered text, for ``nemotron super3 eval --show RESULT``.

    ``path`` is an eval-results artifact directory (holding ``results.json``) or the file itself.
    """
    import io

    from rich.console import Console
    from rich.table import Table

    p = pathlib.Path(path)
    file = p / RESULTS_JSON if p.is_dir() else p
    if not file.exists():
        raise UserError(f"no {RESULTS_JSON} at {p}", hint="pass an eval-results artifact produced by the eval stage")
    results = json.loads(file.read_text())
    header, rows = table_rows(results)
    table = Table(title="bf16 vs quantized (primary metric per task)")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    buf = io.StringIO()
    console = Console(file=buf, width=140, force_terminal=False, color_system=None)
    console.print(table)
    console.print(f"tolerance {results['tolerance']}: {results['tolerance_rule']}")
    console.print(f"gate: {'PASSED' if results['passed'] else 'FAILED'}")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# stage entry


TOLERANCE_RULE = (
    "higher-is-better metrics may drop by at most the tolerance (absolute); "
    "lower-is-better metrics (perplexity) may rise by at most the tolerance (relative)"
)


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Evaluate the bf16 model and every quantized model; write results; raise if the gate fails."""
    _offline()
    from super3.tiny import model as tiny_model
    from super3.tiny import quantize

    started = time.monotonic()
    section = dict(train_cfg.get("eval") or {})
    tasks = list(section.get("tasks") or [])
    if not tasks:
        raise UserError("eval.tasks is empty", hint=f"tiny tasks: {', '.join(PRIMARY_METRICS)}")
    limit = section.get("limit")
    batch_size = int(section.get("batch_size") or 8)
    tolerance = float(section.get("tolerance", 0.05))
    if inputs.get("model") is None:
        raise UserError("the eval stage needs a model input", hint="set run.model to a tiny model artifact")
    tiny_model.set_threads()
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manager = task_manager()

    runs: list[dict[str, Any]] = [{"label": BASELINE, "path": pathlib.Path(inputs["model"].path), "config": None}]
    if inputs.get("quantized") is not None:
        runs += quantized_models(inputs["quantized"])

    models: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for entry in runs:
        t0 = time.monotonic()
        if entry["label"] == BASELINE:
            model, tokenizer = tiny_model.load_model(entry["path"])
        else:
            model, tokenizer, _ = quantize.load_quantized(entry["path"])
        raw[entry["label"]] = evaluate(model, tokenizer, tasks, limit=limit, batch_size=batch_size, manager=manager)
        models[entry["label"]] = {
            "path": str(entry["path"]),
            "config": entry.get("config"),
            "metrics": raw[entry["label"]]["metrics"],
            "examples": raw[entry["label"]]["examples"],
            "seconds": round(time.monotonic() - t0, 2),
        }
        log.info("%s: %s (%.1fs)", entry["label"], models[entry["label"]]["metrics"], models[entry["label"]]["seconds"])
        del model

    import lm_eval

    results: dict[str, Any] = {
        "tasks": tasks,
        "limit": limit,
        "tolerance": tolerance,
        "tolerance_rule": TOLERANCE_RULE,
        "primary": {task: primary_metric(task, raw[BASELINE]) for task in tasks},
        "models": models,
        "columns": list(models),
        "lm_eval_version": getattr(lm_eval, "__version__", "unknown"),
    }
    results["checks"] = check_tolerance(results, tolerance)
    results["passed"] = all(c["passed"] for c in results["checks"])
    results["table"] = {
        task: {label: m["metrics"][task][metric] for label, m in models.items()}
        for task, (metric, _) in results["primary"].items()
    }
    results["runtime_s"] = round(time.monotonic() - started, 2)
    write_sorted_json_atomic(output_dir / RESULTS_JSON, results)
    write_text_atomic(output_dir / RESULTS_MD, render_markdown(results))

    failed = [c for c in results["checks"] if not c["passed"]]
    if failed:
        worst = ", ".join(f"{c['model']} {c['task']} {c['metric']} {c['rule']} {c['degradation']:.4g}" for c in failed)
        raise UserError(
            f"quantized model(s) exceed eval.tolerance={tolerance}: {worst}",
            hint=f"see {output_dir / RESULTS_MD}; try a conservative recipe or raise eval.tolerance",
        )
    return {
        "backend": "tiny",
        "tasks": tasks,
        "limit": limit,
        "tolerance": tolerance,
        "passed": True,
        "table": results["table"],
        "primary": {t: m for t, (m, _) in results["primary"].items()},
        "checks": results["checks"],
        "runtime_s": results["runtime_s"],
    }
