"""Evaluation with nemo-evaluator-launcher: vLLM serves the HF model, the launcher runs the tasks.

``build_eval_plan`` writes one launcher config per evaluated model (the model input, plus each HF
export of an optional quantized-model input): ``deployment`` (vllm: the pinned image, checkpoint,
TP/DP, the serving flags of the evaluator's own Super example for that precision), ``evaluation``
(tasks, params; the tokenizer log-likelihood tasks need) and ``execution`` — key names recorded in
``api_reference/nemo_evaluator.json``.

Execution: the launcher's Slurm executor (``execution: slurm/default``). The launcher's ``local``
executor runs the vLLM and harness containers with Docker, which compute nodes do not have; the
Slurm executor submits one job that deploys vLLM and runs each harness with pyxis containers. This
stage is the driver: it submits through ``launcher.hostname``, waits for the invocation to finish,
then reads the ``results.yml`` files from the shared output directory into ``results.json``, the
project's one eval-results format (``nemotron.node.results``), whose gate checks that every model
stays within ``eval.tolerance`` of the model it came from (direction-aware). Earlier stages' models
given as ``pretrain_model`` / ``sft_model`` are evaluated first, side by side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node import results as R
from nemotron.node.logs import get_logger
from super3.megatron.common import locate_model, require

LAUNCHER = "nemo-evaluator-launcher"
BASELINE = "model"
COMPARE_SLOTS, REFERENCE_SLOTS = R.COMPARE_SLOTS, R.REFERENCE_SLOTS  # label: the slot less ``_model``
CHECKPOINT_MOUNT = "/checkpoint"  # where the launcher mounts checkpoint_path in its containers (deployment/vllm.yaml)

# Serving per precision, from the evaluator's Super example (NVIDIA-NeMo/Evaluator nemo-evaluator-launcher-v0.2.4
# packages/nemo-evaluator-launcher/examples/nemotron/nemotron-3-super/local_nemotron-3-super-120b-a12b.yaml):
# BF16 keeps the Mamba SSM cache in float32; FP8 and NVFP4 use a float16 SSM cache, an FP8 KV cache and
# FlashInfer MoE kernels. Env values use the launcher's ``lit:`` (literal) form.
_COMMON_FLAGS = (
    "--trust-remote-code --gpu-memory-utilization 0.8 --no-enable-prefix-caching --no-enable-chunked-prefill"
)
SERVING: dict[str, dict[str, Any]] = {
    "bf16": {"flags": "--mamba_ssm_cache_dtype float32", "env": {}},
    "fp8": {
        "flags": "--mamba_ssm_cache_dtype float16 --kv-cache-dtype fp8",
        "env": {
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",
            "VLLM_USE_FLASHINFER_MOE_FP8": "1",
            "VLLM_FLASHINFER_MOE_BACKEND": "throughput",
            "MAMBA_CACHE_PHILOX_ROUNDS": "5",
            "MAMBA_CACHE_RS_ROUNDING": "1",
        },
    },
    "nvfp4": {
        "flags": "--mamba_ssm_cache_dtype float16 --kv-cache-dtype fp8",
        "env": {
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",
            "VLLM_USE_FLASHINFER_MOE_FP4": "1",
            "VLLM_USE_FLASHINFER_MOE_FP8": "1",
            "VLLM_FLASHINFER_MOE_BACKEND": "throughput",
            "MAMBA_CACHE_PHILOX_ROUNDS": "5",
            "MAMBA_CACHE_RS_ROUNDING": "1",
        },
    },
}
DONE_STATES = {"success", "failed", "killed", "not_found", "error"}


def precision_of(label: str) -> str:
    """bf16 for the model input; fp8 / nvfp4 for quantized exports (by their ModelOpt config name)."""
    name = label.lower()
    if "nvfp4" in name or "fp4" in name:
        return "nvfp4"
    if "fp8" in name:
        return "fp8"
    return "bf16"


def _targets(inputs: dict[str, Any]) -> list[tuple[str, Path]]:
    """``(label, hf_dir)`` of every model to evaluate: the model, then each quantized export."""
    if "model" not in inputs:
        raise UserError("eval needs run.model")
    out: list[tuple[str, Path]] = []
    for slot in COMPARE_SLOTS:
        if inputs.get(slot) is not None:
            compare_hf = locate_model(inputs[slot]).hf
            if compare_hf is None:
                raise UserError(f"run.{slot} {inputs[slot].ref} has no Hugging Face export to serve with vLLM")
            out.append((slot.removesuffix("_model"), compare_hf))
    hf = locate_model(inputs["model"]).hf
    if hf is None:
        model = inputs["model"]
        raise UserError(f"run.model {model.name}:v{model.version} has no Hugging Face export to serve with vLLM")
    out.append((BASELINE, hf))
    quantized = inputs.get("quantized")
    if quantized is not None:
        from nemotron.artifacts.quantized import quantized_exports

        first = len(out)
        out += [(export.config, export.path) for export in quantized_exports(quantized)]
        if len(out) == first:
            qhf = locate_model(quantized).hf
            if qhf is None:
                raise UserError(f"run.quantized {quantized.name}:v{quantized.version} has no HF export")
            out.append(("quantized", qhf))
    return out


def vllm_image(train_cfg: dict[str, Any]) -> str:
    """``deployment.image``, else the pinned one; never an unpinned ``latest``."""
    from nemotron.upstream.pins import VLLM_EVAL_IMAGE

    image = train_cfg["deployment"].get("image") or VLLM_EVAL_IMAGE
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise UserError(f"deployment.image '{image}' is not pinned", hint=f"name a tag, e.g. {VLLM_EVAL_IMAGE}")
    return image


def _execution(train_cfg: dict[str, Any], checkpoint: Path, results_dir: Path) -> dict[str, Any]:
    launcher, dep = train_cfg["launcher"], train_cfg["deployment"]
    if not launcher.get("hostname"):
        raise UserError(
            "launcher.hostname is not set: the evaluator's Slurm executor submits through a login node",
            hint="set launcher.hostname (and launcher.account / launcher.partition), e.g. in your env.toml profile",
        )
    execution: dict[str, Any] = {
        "hostname": launcher["hostname"],
        "output_dir": str(results_dir),
        "num_nodes": 1,
        "gres": f"gpu:{dep['tensor_parallel'] * dep['data_parallel']}",
        "walltime": launcher["walltime"],
        # the harness loads the tokenizer from the checkpoint (log-likelihood tasks)
        "mounts": {"evaluation": {str(checkpoint): CHECKPOINT_MOUNT}},
    }
    for key in ("username", "account", "partition"):
        if launcher.get(key):
            execution[key] = launcher[key]
    return execution


def launcher_config(train_cfg: dict[str, Any], label: str, checkpoint: Path, results_dir: Path) -> dict[str, Any]:
    """One nemo-evaluator-launcher config (Hydra: execution=slurm/default, deployment=vllm)."""
    ev, dep = train_cfg["eval"], train_cfg["deployment"]
    if dep["type"] != "vllm":
        raise UserError(f"deployment.type '{dep['type']}' is not served by the megatron backend", hint="use vllm")
    serving = SERVING[precision_of(label)]
    params: dict[str, Any] = {
        "parallelism": ev["batch_size"],
        # log-likelihood tasks (adlr_mmlu, hellaswag, ...) tokenize on the client side (evaluator Super base example)
        "extra": {"tokenizer": CHECKPOINT_MOUNT, "tokenizer_backend": "huggingface"},
    }
    if ev.get("limit"):
        params["limit_samples"] = ev["limit"]
    return {
        "defaults": [{"execution": "slurm/default"}, {"deployment": "vllm"}, "_self_"],
        "execution": _execution(train_cfg, checkpoint, results_dir),
        "deployment": {
            "image": vllm_image(train_cfg),
            "checkpoint_path": str(checkpoint),
            "served_model_name": label,
            "tensor_parallel_size": dep["tensor_parallel"],
            "data_parallel_size": dep["data_parallel"],
            "extra_args": f"--max-model-len {dep['max_model_len']} {_COMMON_FLAGS} {serving['flags']}",
            "env_vars": {name: f"lit:{value}" for name, value in serving["env"].items()},
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
    previous: str | None = None  # the model each one was made from: the one before it in recipe order
    for label, checkpoint in _targets(inputs):
        results_dir = output_dir / label
        slot = f"{label}_model" if f"{label}_model" in COMPARE_SLOTS else BASELINE
        quantized = label != BASELINE and slot == BASELINE
        art = inputs["quantized"] if quantized else inputs[slot]
        plan.append(
            {
                "label": label,
                "name": f"{art.ref}/{label}" if quantized else art.ref,
                "stage": art.run.stage,
                "baseline": BASELINE if quantized else previous,
                "checkpoint": str(checkpoint),
                "config_path": str(output_dir / "launcher" / f"{label}.yaml"),
                "results_dir": str(results_dir),
                "config": launcher_config(train_cfg, label, checkpoint, results_dir),
            }
        )
        previous = previous if quantized or slot in REFERENCE_SLOTS else label
    return plan


def launcher_command(config_path: str | Path) -> list[str]:
    return [LAUNCHER, "run", "--config", str(config_path)]


def inner_commands(train_cfg: dict[str, Any], output_dir: str | Path) -> list[list[str]]:
    """For the dry-run: the launcher call per model (labels known from the config alone)."""
    labels = [BASELINE] + (["<quantized configs>"] if (train_cfg.get("run") or {}).get("quantized") else [])
    return [launcher_command(Path(output_dir) / "launcher" / f"{label}.yaml") for label in labels]


def summarize(plan: list[dict[str, Any]], tolerance: R.Tolerance) -> dict[str, Any]:
    """The results document (``nemotron.node.results``) from the ``results.yml`` files on disk.

    The evaluator names no main metric, so each task is judged by its first, direction by name.
    """
    models = [
        R.model_entry(e["label"], e["name"], e["stage"], R.collect_results(e["results_dir"]), e["baseline"])
        for e in plan
    ]
    return R.build_results(models, R.first_metric_primary(models), tolerance, backend="megatron")


def _write_yaml(data: dict[str, Any], path: Path) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)


def _launch(plan: list[dict[str, Any]], poll_seconds: int = 60) -> None:
    """Submit every model's evaluation through the launcher's Slurm executor and wait for all of them."""
    import time

    require("nemo_evaluator_launcher", "nemo-evaluator-launcher")
    from nemo_evaluator_launcher.api.functional import get_status, run_eval
    from nemo_evaluator_launcher.api.types import RunConfig

    log = get_logger()
    invocations = {}
    for entry in plan:
        invocation = run_eval(RunConfig.from_hydra(config=entry["config_path"]))
        if not invocation:
            raise RuntimeError(f"{LAUNCHER} returned no invocation for {entry['label']}")
        log.info("evaluating %s: invocation %s (%s)", entry["label"], invocation, entry["config_path"])
        invocations[entry["label"]] = invocation
    pending = dict(invocations)
    while pending:
        time.sleep(poll_seconds)
        for label, invocation in list(pending.items()):
            states = {job["status"] for job in get_status([invocation])}
            if states <= DONE_STATES:
                log.info("%s (%s) finished: %s", label, invocation, ", ".join(sorted(states)))
                if states != {"success"}:
                    raise RuntimeError(f"evaluation of {label} ended {sorted(states)} (invocation {invocation})")
                del pending[label]


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Node entry (``super3.megatron.eval``)."""
    output_dir = Path(output_dir)
    plan = build_eval_plan(train_cfg, inputs, output_dir)
    for entry in plan:
        _write_yaml(entry["config"], Path(entry["config_path"]))
    _launch(plan, train_cfg["launcher"]["poll_seconds"])
    results = summarize(plan, train_cfg["eval"]["tolerance"])
    if not any(m["metrics"] for m in results["models"]):
        raise RuntimeError(f"the evaluator wrote no results under {output_dir}; nothing to publish")
    path = R.write_results(output_dir, results)
    failure = R.gate_failure(results, path)
    if failure is not None:
        raise failure
    return {"tasks": list(train_cfg["eval"]["tasks"]), **R.metadata_view(results)}
