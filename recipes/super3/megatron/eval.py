"""Evaluation with nemo-evaluator-launcher: vLLM serves the HF model, the launcher runs the tasks.

``build_eval_plan`` writes one launcher config per evaluated model (the model input, plus each HF
export of an optional quantized-model input): ``deployment`` (vllm: checkpoint, TP/DP, extra args),
``evaluation`` (tasks, params) and ``execution`` (local, output dir) — key names recorded in
``api_reference/nemo_evaluator.json``. ``_launch`` runs ``nemo-evaluator-launcher run --config``
for each; the results (``results.yml`` per task) are summarised in ``summary.json``, with a check
that every quantized model stays within ``eval.tolerance`` of the model it came from.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node.logs import get_logger
from nemotron.node.results import SUMMARY_FILE, SUMMARY_FORMAT, collect_results, primary_score
from super3.megatron.common import locate_model

LAUNCHER = "nemo-evaluator-launcher"
BASELINE = "model"


def _targets(inputs: dict[str, Any]) -> list[tuple[str, Path]]:
    """``(label, hf_dir)`` of every model to evaluate: the model, then each quantized export."""
    if "model" not in inputs:
        raise UserError("eval needs run.model")
    out: list[tuple[str, Path]] = []
    hf = locate_model(inputs["model"]).hf
    if hf is None:
        model = inputs["model"]
        raise UserError(f"run.model {model.name}:v{model.version} has no Hugging Face export to serve with vLLM")
    out.append((BASELINE, hf))
    quantized = inputs.get("quantized")
    if quantized is not None:
        base = Path(quantized.path)
        configs = (quantized.metadata or {}).get("configs") or {}
        for name, entry in configs.items():
            if entry.get("hf_dir"):
                path = Path(entry["hf_dir"])
                out.append((name, path if path.is_absolute() else base / path))
        if len(out) == 1:
            qhf = locate_model(quantized).hf
            if qhf is None:
                raise UserError(f"run.quantized {quantized.name}:v{quantized.version} has no HF export")
            out.append(("quantized", qhf))
    return out


def launcher_config(train_cfg: dict[str, Any], label: str, checkpoint: Path, results_dir: Path) -> dict[str, Any]:
    """One nemo-evaluator-launcher config (Hydra: execution=local, deployment=vllm)."""
    ev, dep = train_cfg["eval"], train_cfg["deployment"]
    if dep["type"] != "vllm":
        raise UserError(f"deployment.type '{dep['type']}' is not served by the megatron backend", hint="use vllm")
    params: dict[str, Any] = {"parallelism": ev["batch_size"]}
    if ev.get("limit"):
        params["limit_samples"] = ev["limit"]
    return {
        "defaults": [{"execution": "local"}, {"deployment": "vllm"}, "_self_"],
        "execution": {"output_dir": str(results_dir)},
        "deployment": {
            "checkpoint_path": str(checkpoint),
            "served_model_name": label,
            "tensor_parallel_size": dep["tensor_parallel"],
            "data_parallel_size": dep["data_parallel"],
            "extra_args": f"--max-model-len {dep['max_model_len']}",
        },
        "evaluation": {
            "nemo_evaluator_config": {"config": {"params": params}},
            "tasks": [{"name": task} for task in ev["tasks"]],
        },
    }


def build_eval_plan(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> list[dict[str, Any]]:
    """Per evaluated model: label, checkpoint, launcher config, where it is written and where results land."""
    output_dir = Path(output_dir)
    plan = []
    for label, checkpoint in _targets(inputs):
        results_dir = output_dir / label
        plan.append(
            {
                "label": label,
                "checkpoint": str(checkpoint),
                "config_path": str(output_dir / "launcher" / f"{label}.yaml"),
                "results_dir": str(results_dir),
                "config": launcher_config(train_cfg, label, checkpoint, results_dir),
            }
        )
    return plan


def launcher_command(config_path: str | Path) -> list[str]:
    return [LAUNCHER, "run", "--config", str(config_path)]


def inner_commands(train_cfg: dict[str, Any], output_dir: str | Path) -> list[list[str]]:
    """For the dry-run: the launcher call per model (labels known from the config alone)."""
    labels = [BASELINE] + (["<quantized configs>"] if (train_cfg.get("run") or {}).get("quantized") else [])
    return [launcher_command(Path(output_dir) / "launcher" / f"{label}.yaml") for label in labels]


def summarize(plan: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """Scores per model and task from the results on disk, plus the quantized-vs-baseline checks."""
    models = {entry["label"]: collect_results(entry["results_dir"]) for entry in plan}
    checks = []
    base = models.get(BASELINE, {})
    for label, per_task in models.items():
        if label == BASELINE:
            continue
        for task, scores in sorted(per_task.items()):
            ref, value = primary_score(base.get(task, {})), primary_score(scores)
            if ref is None or value is None:
                continue
            drop = ref - value
            checks.append(
                {
                    "model": label,
                    "baseline": BASELINE,
                    "task": task,
                    "drop": drop,
                    "tolerance": tolerance,
                    "ok": drop <= tolerance,
                }
            )
    return {"format": SUMMARY_FORMAT, "models": models, "checks": checks}


def _write_yaml(data: dict[str, Any], path: Path) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def _launch(plan: list[dict[str, Any]]) -> None:
    """Run the launcher for each model (needs the launcher and Docker/vLLM on the node)."""
    import shutil

    if shutil.which(LAUNCHER) is None:
        raise UserError(f"{LAUNCHER} is not installed here", hint="run eval in its container (resources.container)")
    for entry in plan:
        cmd = launcher_command(entry["config_path"])
        get_logger().info("evaluating %s: %s", entry["label"], " ".join(cmd))
        subprocess.run(cmd, check=True)


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.eval``)."""
    output_dir = Path(output_dir)
    plan = build_eval_plan(train_cfg, inputs, output_dir)
    for entry in plan:
        _write_yaml(entry["config"], Path(entry["config_path"]))
    _launch(plan)
    summary = summarize(plan, train_cfg["eval"]["tolerance"])
    if not any(summary["models"].values()):
        raise RuntimeError(f"the evaluator wrote no results under {output_dir}; nothing to publish")
    tmp = output_dir / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, output_dir / SUMMARY_FILE)
    return {
        "format": SUMMARY_FORMAT,
        "tasks": list(train_cfg["eval"]["tasks"]),
        "scores": {label: {t: primary_score(s) for t, s in per.items()} for label, per in summary["models"].items()},
        "quantization_ok": all(c["ok"] for c in summary["checks"]),
    }
