"""Tiny-backend ``model import`` / ``model export``: an identity conversion with real checks.

The tiny backend trains and serves HF safetensors directly, so there is no second format to convert
to; what the stage exercises on a laptop is the part that matters for the journey — the input's
format is checked (``config.json`` + safetensors, the same rule as ``artifacts add``), the files
become a new artifact with lineage back to the source, and ``--verify`` runs the same two checks
Megatron-Bridge runs on GPU: every weight of the result equals the source's (the roundtrip check),
and both produce the same logits on a prompt (the output comparison).
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from typing import Any

from nemotron.artifacts.formats import HF, find_model_dirs, hf_problem
from nemotron.errors import UserError

from . import model as tiny_model
from . import training


def source_hf_dir(model: Any) -> pathlib.Path:
    """The HF directory of the input model, or a one-line error saying what it holds instead."""
    dirs = find_model_dirs(model.path, model.metadata)
    if HF not in dirs:
        why = hf_problem(pathlib.Path(model.path))
        raise UserError(
            f"run.model {model.name}:v{model.version} at {model.path} is not a Hugging Face checkpoint ({why})",
            hint="the tiny backend converts HF safetensors directories (nemotron artifacts add DIR --kind model checks one)",
        )
    return dirs[HF]


def copy_model(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Copy the HF directory to ``target`` atomically (staged beside it, then renamed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        shutil.copytree(source, staged, dirs_exist_ok=True)
        tiny_model.publish_dir(staged, target)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return target


def verify(source: pathlib.Path, result: pathlib.Path, prompt: str, min_cosine: float) -> dict[str, Any]:
    """Weights roundtrip (every tensor equal) and output comparison (next token, logits cosine)."""
    import torch

    src_model, tokenizer = tiny_model.load_model(source)
    out_model, _ = tiny_model.load_model(result)
    src_state, out_state = src_model.state_dict(), out_model.state_dict()
    mismatched = sorted(
        k for k in src_state if k not in out_state or not torch.equal(src_state[k], out_state[k])
    ) + sorted(set(out_state) - set(src_state))
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        a = src_model(input_ids=ids).logits[0, -1].float()
        b = out_model(input_ids=ids).logits[0, -1].float()
    cosine = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    report = {
        "roundtrip": {"tensors": len(src_state), "mismatched": len(mismatched), "passed": not mismatched},
        "compare_outputs": {
            "prompt": prompt,
            "token_match": bool(int(a.argmax()) == int(b.argmax())),
            "max_abs_logit_diff": float((a - b).abs().max()),
            "cosine": round(cosine, 6),
            "min_cosine": min_cosine,
        },
    }
    report["compare_outputs"]["passed"] = report["compare_outputs"]["token_match"] and cosine >= min_cosine
    report["passed"] = report["roundtrip"]["passed"] and report["compare_outputs"]["passed"]
    if mismatched:
        report["roundtrip"]["examples"] = mismatched[:5]
    return report


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: pathlib.Path) -> dict[str, Any]:
    """Convert ``inputs["model"]`` into ``output_dir/hf``; returns the artifact metadata."""
    stage = str(train_cfg["job"]["stage"])
    model = inputs.get("model")
    if model is None:
        raise UserError(f"{stage} needs run.model", hint="nemotron artifacts add DIR --name NAME --kind model")
    source = source_hf_dir(model)
    output_dir = pathlib.Path(output_dir)
    result = copy_model(source, output_dir / "hf")
    training.log(f"{stage}: {source} -> {result} (identity conversion: the tiny backend trains HF directly)")
    meta: dict[str, Any] = {
        "format": HF,
        "hf_dir": "hf",
        "backend": "tiny",
        "conversion": {"direction": stage.split(".")[-1], "source": str(source), "method": "identity (tiny)"},
    }
    checks = train_cfg.get("verify") or {}
    if checks.get("enabled"):
        report = verify(
            source, result, str(checks.get("prompt", "What is 2 + 3?")), float(checks.get("min_cosine", 0.98))
        )
        training.log(f"{stage}: verify {'passed' if report['passed'] else 'FAILED'}: {report}")
        if not report["passed"]:
            raise UserError(f"{stage}: the converted model does not match its source: {report}")
        meta["verify"] = report
    return meta
