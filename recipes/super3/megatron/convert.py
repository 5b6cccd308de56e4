"""``model import`` (HF -> Megatron) and ``model export`` (Megatron -> HF) with Megatron-Bridge's own
multi-GPU conversion scripts, and ``--verify`` with its own checks.

Why the example scripts and not a re-implementation: the Super3 model docs (Megatron-Bridge v0.4.0
``docs/models/llm/nemotron3-super.md``) name them as *the* way to convert this model — it needs
expert parallelism, which the single-process converter cannot do — and they ship in the container
at ``/opt/Megatron-Bridge``. ``build_convert_job`` turns train.yaml into their command lines (pure,
tested on CPU against the argument lists below); ``_launch`` runs them with torchrun on the node.
The script exists in v0.4.0 and v0.5.x; v0.6.0 replaced it by ``scripts/conversion/convert.sh``
(v0.6.0 ``docs/models/nemotron/nemotron3-super.md``), so a container with v0.6.0 fails the node's
check for the script with one line instead of running something else.

Checks (``verify.enabled``): ``hf_megatron_roundtrip_multi_gpu.py --megatron-load-path`` loads the
Megatron checkpoint, exports every weight back to HF and raises on any tensor not allclose to the HF
original; ``compare_hf_and_megatron/compare.py`` runs one prompt through both and prints the next
token match and the logits cosine similarity (it does not fail by itself: we parse its two lines and
fail below ``verify.min_cosine``). Either failing fails the stage, so no unverified artifact is
published when verification was asked for; the outcome is recorded in the artifact metadata.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts.formats import HF, MEGATRON, find_model_dirs, megatron_iteration
from nemotron.errors import UserError

CONVERT_SCRIPT = "examples/conversion/convert_checkpoints_multi_gpu.py"
ROUNDTRIP_SCRIPT = "examples/conversion/hf_megatron_roundtrip_multi_gpu.py"
COMPARE_SCRIPT = "examples/conversion/compare_hf_and_megatron/compare.py"

SCRIPT_ARGS: dict[str, dict[str, tuple[str, ...]]] = {
    # NVIDIA-NeMo/Megatron-Bridge v0.4.0 (0fbfe7d3e970), argparse of each script: (required, optional).
    f"{CONVERT_SCRIPT} import": (
        ("--hf-model", "--megatron-path"),
        ("--tp", "--pp", "--ep", "--etp", "--torch-dtype", "--trust-remote-code"),
    ),
    f"{CONVERT_SCRIPT} export": (
        ("--hf-model", "--megatron-path", "--hf-path"),
        (
            "--tp",
            "--pp",
            "--ep",
            "--etp",
            "--torch-dtype",
            "--trust-remote-code",
            "--no-progress",
            "--not-strict",
            "--distributed-save",
            "--save-every-n-ranks",
        ),
    ),
    ROUNDTRIP_SCRIPT: (
        (),
        (
            "--hf-model-id",
            "--output-dir",
            "--tp",
            "--pp",
            "--ep",
            "--etp",
            "--megatron-save-path",
            "--megatron-load-path",
            "--trust-remote-code",
            "--not-strict",
            "--skip-save",
        ),
    ),
    COMPARE_SCRIPT: (
        ("--hf_model_path", "--prompt"),
        (
            "--image_path",
            "--megatron_model_path",
            "--tp",
            "--pp",
            "--ep",
            "--etp",
            "--model_class",
            "--enable_debug_hooks",
            "--roundtrip_hf",
            "--exported_hf_dir",
            "--trust_remote_code",
        ),
    ),
}
"""The argument names each script accepts (read at the tag above): the tests check every command."""

TOKEN_MATCH = re.compile(r"Token match: (True|False)")
COSINE = re.compile(r"Cosine similarity: ([0-9.eE+-]+)")


@dataclass
class ConvertJob:
    """The commands one conversion runs, in order, and where its results land."""

    direction: str  # import | export
    convert: list[str]
    checks: dict[str, list[str]] = field(default_factory=dict)  # name -> command
    megatron_dir: Path | None = None
    hf_dir: Path | None = None
    source: Path | None = None
    min_cosine: float = 0.98


def script_args(command: list[str]) -> tuple[str, list[str]]:
    """``(script key, option names)`` of a torchrun command line built here."""
    script = next(a for a in command if a.endswith(".py"))
    rel = script.split("/examples/", 1)[-1]
    key = f"examples/{rel}"
    after = command[command.index(script) + 1 :]
    if after and not after[0].startswith("-"):
        key += f" {after[0]}"
    return key, [a for a in after if a.startswith("--")]


def _torchrun(gpus: int, script: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={gpus}", str(script), *args]


def _parallel_args(parallel: dict[str, Any]) -> list[str]:
    names = {"tensor": "tp", "pipeline": "pp", "expert": "ep", "expert_tensor": "etp"}
    return [x for key, flag in names.items() for x in (f"--{flag}", str(parallel.get(key, 1)))]


SOURCE_FILES = {HF: "config.json + safetensors", MEGATRON: "latest_checkpointed_iteration.txt"}
SOURCE_NAMES = {HF: "a Hugging Face checkpoint", MEGATRON: "a Megatron checkpoint"}


def _require(fmt: str, dirs: dict[str, Path], ref: str, direction: str) -> None:
    """One line when the input lacks the format this direction converts from."""
    if fmt not in dirs:
        other = "an HF" if fmt == MEGATRON else "a Megatron"
        raise UserError(
            f"run.model {ref} has no {SOURCE_NAMES[fmt][2:]} ({SOURCE_FILES[fmt]})",
            hint=f"model {direction} converts {SOURCE_NAMES[fmt]}s; {other} checkpoint needs no {direction}",
        )


def build_convert_job(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> ConvertJob:
    """train.yaml + the resolved model input -> the Megatron-Bridge command lines."""
    stage = str(train_cfg["job"]["stage"])
    direction = stage.split(".")[-1]
    model = inputs.get("model")
    if model is None:
        raise UserError(f"{stage} needs run.model", hint="nemotron artifacts add DIR --name NAME --kind model")
    output_dir = Path(output_dir)
    res = train_cfg.get("resources") or {}
    gpus = int(res.get("nodes", 1)) * int(res.get("gpus_per_node", 8))
    parallel = train_cfg.get("parallel") or {}
    tp, pp = int(parallel.get("tensor", 1)), int(parallel.get("pipeline", 1))
    ep, etp = int(parallel.get("expert", 1)), int(parallel.get("expert_tensor", 1))
    # megatron-core: world = TP x PP x DP, and the expert group EP x ETP must divide TP x DP
    if gpus < 1 or gpus % (tp * pp) or (gpus // pp) % (ep * etp):
        raise UserError(
            f"{stage}: parallel TP{parallel.get('tensor')} PP{parallel.get('pipeline')} EP{parallel.get('expert')} "
            f"does not fit {gpus} GPU(s)",
            hint="the published layout is TP1 EP8 on one node of 8 GPUs",
        )
    if int(res.get("nodes", 1)) != 1:
        raise UserError(
            f"{stage} runs on one node", hint="set resources.nodes=1 (MB's conversion uses torchrun on one node)"
        )
    conv = train_cfg.get("convert") or {}
    mb = Path(conv.get("mb_root", "/opt/Megatron-Bridge"))
    dtype = ["--torch-dtype", conv.get("torch_dtype", "bfloat16")]
    trust = ["--trust-remote-code"] if conv.get("trust_remote_code", True) else []
    dirs = find_model_dirs(model.path, model.metadata)
    ref = f"{model.name}:v{model.version}"
    verify = train_cfg.get("verify") or {}
    prompt = str(verify.get("prompt", "The capital of France is"))
    if direction == "import":
        _require(HF, dirs, ref, "import")
        source, megatron_dir = dirs[HF], output_dir / "checkpoints"
        args = ["import", "--hf-model", str(source), "--megatron-path", str(megatron_dir)]
        job = ConvertJob(
            "import", _torchrun(gpus, mb / CONVERT_SCRIPT, [*args, *_parallel_args(parallel), *dtype, *trust])
        )
        job.megatron_dir, job.source, hf_for_checks = megatron_dir, source, source
    elif direction == "export":
        _require(MEGATRON, dirs, ref, "export")
        source, hf_dir = dirs[MEGATRON], output_dir / "hf"
        template = conv.get("hf_template") or (str(dirs[HF]) if HF in dirs else None)
        if not template:
            raise UserError(
                f"{stage}: no HF template for the export", hint="set convert.hf_template to an HF model id or dir"
            )
        args = ["export", "--hf-model", template, "--megatron-path", str(source), "--hf-path", str(hf_dir)]
        args += [*_parallel_args(parallel), *dtype, *trust, "--no-progress"]
        args += [] if conv.get("strict", True) else ["--not-strict"]
        args += ["--distributed-save"] if conv.get("distributed_save") else []
        job = ConvertJob("export", _torchrun(gpus, mb / CONVERT_SCRIPT, args))
        job.hf_dir, job.source, hf_for_checks, megatron_dir = hf_dir, source, hf_dir, source
    else:
        raise UserError(f"unknown conversion stage {stage}")
    job.min_cosine = float(verify.get("min_cosine", 0.98))
    if verify.get("enabled"):
        if verify.get("roundtrip", True):
            rt = ["--hf-model-id", str(hf_for_checks), "--megatron-load-path", str(megatron_dir)]
            rt += [*_parallel_args(parallel), "--skip-save", *trust]
            job.checks["roundtrip"] = _torchrun(gpus, mb / ROUNDTRIP_SCRIPT, rt)
        if verify.get("compare_outputs", True):
            cmp = ["--hf_model_path", str(hf_for_checks), "--megatron_model_path", str(megatron_dir)]
            cmp += ["--prompt", prompt, *_parallel_args(parallel)]
            cmp += ["--trust_remote_code"] if trust else []
            job.checks["compare_outputs"] = _torchrun(gpus, mb / COMPARE_SCRIPT, cmp)
    return job


def parse_compare(output: str, min_cosine: float) -> dict[str, Any]:
    """compare.py's verdict from its printed ``Token match`` / ``Cosine similarity`` lines."""
    token = TOKEN_MATCH.findall(output)
    cosine = COSINE.findall(output)
    if not token or not cosine:
        return {"passed": False, "error": "compare.py printed no comparison (see the job log)"}
    value = float(cosine[-1])
    return {
        "token_match": token[-1] == "True",
        "cosine": value,
        "min_cosine": min_cosine,
        "passed": token[-1] == "True" and value >= min_cosine,
    }


def _run(command: list[str], cwd: Path) -> tuple[int, str]:
    """Run one torchrun command, streaming its output into the job log and keeping it for parsing."""
    lines: list[str] = []
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    return proc.returncode, "".join(lines)


def _launch(job: ConvertJob, mb_root: Path) -> dict[str, Any]:
    """Run the conversion, then each check; returns the verify report (empty when not asked)."""
    from super3.megatron.common import require

    require("megatron.bridge", "Megatron-Bridge")
    if not (mb_root / CONVERT_SCRIPT).is_file():
        raise UserError(
            f"{mb_root / CONVERT_SCRIPT} not found in this container",
            hint="set convert.mb_root to the Megatron-Bridge checkout with examples/ (the model docs use /opt/Megatron-Bridge)",
        )
    code, _ = _run(job.convert, mb_root)
    if code:
        raise RuntimeError(f"Megatron-Bridge {job.direction} failed with exit code {code}")
    report: dict[str, Any] = {}
    for name, command in job.checks.items():
        code, output = _run(command, mb_root)
        if name == "roundtrip":
            report[name] = {"passed": code == 0, "exit_code": code}
        else:
            report[name] = parse_compare(output, job.min_cosine) if code == 0 else {"passed": False, "exit_code": code}
    if report:
        report["passed"] = all(r["passed"] for r in report.values())
    return report


def run(train_cfg: dict[str, Any], inputs: dict[str, Any], output_dir: str | Path) -> dict[str, Any]:
    """Convert, check the result's format (and, with verify, its weights and outputs); return metadata."""
    output_dir = Path(output_dir)
    job = build_convert_job(train_cfg, inputs, output_dir)
    conv = train_cfg.get("convert") or {}
    for stale in (job.megatron_dir if job.direction == "import" else job.hf_dir,):
        if stale is not None and stale.exists():
            shutil.rmtree(stale)  # a requeued job converts again from scratch: never publish a mix
    report = _launch(job, Path(conv.get("mb_root", "/opt/Megatron-Bridge")))
    meta: dict[str, Any] = {"backend": "megatron", "library": "megatron-bridge"}
    if job.direction == "import":
        iteration = megatron_iteration(job.megatron_dir)
        if iteration is None:
            raise RuntimeError(f"import wrote no complete Megatron checkpoint in {job.megatron_dir}")
        meta.update(
            format="megatron+hf",
            megatron_checkpoint="checkpoints",
            iteration=iteration,
            hf_dir=str(job.source),  # the HF source stays where it is: eval/RL can read it
        )
    else:
        from nemotron.artifacts.formats import hf_problem

        problem = hf_problem(job.hf_dir)
        if problem:
            raise RuntimeError(f"export wrote no loadable HF checkpoint in {job.hf_dir}: {problem}")
        meta.update(format="megatron+hf", hf_dir="hf", megatron_checkpoint=str(job.source))
    meta["conversion"] = {"direction": job.direction, "source": str(job.source), "script": CONVERT_SCRIPT}
    if report:
        meta["verify"] = report
        if not report["passed"]:
            raise UserError(f"model {job.direction}: verification failed: {report}", hint="see the job log")
    return meta
