"""Node preflight: checks a GPU job runs once per node, in its container, before torchrun/Ray fan out.

Why: a wrong container, a library at another version than the one our translation was checked
against, missing GPUs or an output directory the node cannot write all fail a big job minutes in,
once per worker, as hundreds of lines. Here each is one row of a table and the first failure is one
line with exit code 2, before any worker starts.

Generic checks (every megatron stage): the stage's libraries import in this container and their
versions match ``nemotron.upstream.pins`` for ``resources.container``; the GPUs the job asked for
are visible; the output directory is writable; the artifact registry is reachable (and the run's
inputs resolve). Then the stage hook: when ``recipes/super3/megatron/<stage>.py`` defines
``preflight(train_cfg) -> list[Check]`` it is called (a hook that returns ``None`` passed; one that
raises ``UserError`` failed with that message).

``python -m nemotron.node.preflight --stage S --config train.yaml`` (``--stage`` defaults to the
job's stage). ``--report FILE`` also writes the rows as JSON and always exits 0; ``--doctor`` skips
the checks that need a particular run's inputs. A ``nemotron doctor`` job runs this file with
``NEMOTRON_PREFLIGHT_DOCTOR=1``: both, with the report at ``<job.output_dir>/preflight.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nemotron.errors import UserError


@dataclass
class Check:
    """One preflight row: what was checked, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


# Libraries each megatron stage imports on the node (distribution name -> module to import).
# NeMo-RL lives in a checkout inside its container (not a pip install): the RL hook checks that tree.
STAGE_LIBRARIES: dict[str, tuple[tuple[str, str], ...]] = {
    "pretrain": (("megatron-bridge", "megatron.bridge"), ("megatron-core", "megatron.core")),
    "sft": (("megatron-bridge", "megatron.bridge"), ("megatron-core", "megatron.core")),
    "quantize": (
        ("megatron-bridge", "megatron.bridge"),
        ("megatron-core", "megatron.core"),
        ("nvidia-modelopt", "modelopt"),
    ),
    "rl": (),
    "eval": (("nemo-evaluator-launcher", "nemo_evaluator_launcher"),),
}


def stage_root(stage: str) -> str:
    """``rl.rlvr`` -> ``rl``: the entry script and backend module of a sub-stage."""
    return stage.split(".")[0]


def _installed_version(dist: str, module: Any) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return getattr(module, "__version__", None)


def library_checks(stage: str, image: str | None) -> list[Check]:
    """Each library of the stage imports here, at the version pinned for ``image``."""
    from nemotron.upstream.pins import CONTAINERS

    container = CONTAINERS.get(image or "")
    checks: list[Check] = []
    if not image:
        checks.append(
            Check("pins", True, "not checked: no container (resources.container is empty): the node's Python")
        )
    elif container is None:
        known = ", ".join(sorted(CONTAINERS)) or "none"
        checks.append(
            Check(
                "pins",
                True,
                f"not checked: no pinned versions for container {image!r} in nemotron.upstream.pins (known: {known})",
            )
        )
    for dist, module_name in STAGE_LIBRARIES.get(stage_root(stage), ()):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure means the container is wrong
            where = f"container {image}" if image else "this environment (no container)"
            checks.append(Check(f"library {dist}", False, f"import {module_name} failed in {where}: {exc}"))
            continue
        found = _installed_version(dist, module) or "unknown"
        pin = next((p for p in container.pins if p.library == dist), None) if container else None
        if pin is None:
            detail = f"{found} (no pin for {dist})" if container else found
            checks.append(Check(f"library {dist}", True, detail))
        elif not pin.accepts(found):
            checks.append(
                Check(
                    f"library {dist}",
                    False,
                    f"{found} here, but the config was checked against {pin.version} ({pin.repo} {pin.tag}); "
                    f"use the container {image} or update nemotron.upstream.pins",
                )
            )
        else:
            checks.append(Check(f"library {dist}", True, f"{found} (pinned, {pin.repo} {pin.tag})"))
    return checks


def visible_gpus() -> tuple[int, str]:
    """How many GPUs this process sees, and how that was found out (nvidia-smi, else torch)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
            if out.returncode == 0:
                return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU ")), "nvidia-smi -L"
        except (OSError, subprocess.TimeoutExpired):
            pass
    try:
        import torch

        return int(torch.cuda.device_count()), "torch.cuda.device_count()"
    except Exception:  # noqa: BLE001 - no torch, or a broken CUDA install: no GPU visible either way
        return 0, "no nvidia-smi and no torch with CUDA"


def gpu_check(train_cfg: dict[str, Any]) -> Check:
    wanted = int((train_cfg.get("resources") or {}).get("gpus_per_node") or 0)
    found, how = visible_gpus()
    ok = found >= wanted
    detail = f"{found} visible ({how}), {wanted} requested per node"
    if not ok:
        detail += "; check the profile's GPU request (gres) and that the container sees the devices"
    return Check("gpus", ok, detail)


def writable_check(name: str, directory: str | Path | None) -> Check:
    """Create ``directory`` if needed and write and remove a file in it (the shared filesystem)."""
    if not directory:
        return Check(name, False, "not set in train.yaml job:")
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".preflight-", delete=True) as handle:
            handle.write(b"ok")
            handle.flush()
    except OSError as exc:
        return Check(name, False, f"{path} is not writable from {os.uname().nodename}: {exc.strerror or exc}")
    return Check(name, True, f"{path} writable")


def registry_checks(train_cfg: dict[str, Any], with_inputs: bool) -> list[Check]:
    job = train_cfg.get("job") or {}
    checks = [writable_check("artifact registry", job.get("artifacts_root"))]
    if with_inputs and checks[0].ok and (train_cfg.get("run") or {}):
        from nemotron.artifacts.node import resolve_inputs

        try:
            inputs = resolve_inputs(train_cfg)
            names = ", ".join(f"{slot}={a.name}:v{a.version}" for slot, a in sorted(inputs.items()))
            checks.append(Check("inputs", True, names or "none"))
        except UserError as err:
            checks.append(Check("inputs", False, err.one_line()))
    return checks


def stage_hook(stage: str) -> Callable[[dict[str, Any]], Any] | None:
    """``preflight`` of ``recipes/super3/megatron/<stage>.py``, or ``None`` when it defines none."""
    from nemotron.paths import RECIPES_DIR

    if str(RECIPES_DIR) not in sys.path:
        sys.path.insert(0, str(RECIPES_DIR))
    module = importlib.import_module(f"super3.megatron.{stage_root(stage)}")
    hook = getattr(module, "preflight", None)
    return hook if callable(hook) else None


def hook_checks(stage: str, train_cfg: dict[str, Any]) -> list[Check]:
    name = f"{stage_root(stage)} preflight"
    try:
        hook = stage_hook(stage)
        if hook is None:
            return []
        result = hook(train_cfg)
    except UserError as err:
        return [Check(name, False, err.one_line())]
    except Exception as exc:  # noqa: BLE001 - a crashing hook is a failed check, not a traceback
        return [Check(name, False, f"{type(exc).__name__}: {exc}")]
    if result is None:
        return [Check(name, True, "passed")]
    return list(result)


def run_checks(stage: str, train_cfg: dict[str, Any], *, with_inputs: bool = True) -> list[Check]:
    """Every check, in order; none of them raises."""
    job = train_cfg.get("job") or {}
    resources = train_cfg.get("resources") or {}
    checks = library_checks(stage, resources.get("container"))
    checks.append(gpu_check(train_cfg))
    checks.append(writable_check("output dir", job.get("output_dir")))
    checks += registry_checks(train_cfg, with_inputs)
    if train_cfg.get("backend") == "megatron":
        checks += hook_checks(stage, train_cfg)
    return checks


def table(stage: str, checks: list[Check]) -> str:
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"preflight {stage} on {os.uname().nodename}"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}" for c in checks]
    return "\n".join(lines)


def load_config(path: str | Path) -> dict[str, Any]:
    from nemotron.node.runner import load_train_yaml

    train_cfg = load_train_yaml(path)
    if not isinstance(train_cfg.get("job"), dict):
        raise UserError(f"{path} has no job: section", hint="train.yaml is written by the submit side; resubmit")
    return train_cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nemotron.node.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the job's train.yaml")
    parser.add_argument("--stage", help="stage name (default: job.stage of train.yaml)")
    parser.add_argument("--report", help="also write the rows as JSON here; exit 0 whatever they say")
    parser.add_argument("--doctor", action="store_true", help="skip the checks that need this run's inputs")
    args = parser.parse_args(argv)
    doctor_job = os.environ.get("NEMOTRON_PREFLIGHT_DOCTOR") == "1"  # a `nemotron doctor` job runs this file
    args.doctor = args.doctor or doctor_job
    try:
        train_cfg = load_config(args.config)
        stage = args.stage or str(train_cfg["job"].get("stage") or "")
        if not stage:
            raise UserError(f"{args.config} names no job.stage", hint="pass --stage")
    except UserError as err:
        print(f"error: preflight: {err.one_line()}", file=sys.stderr, flush=True)
        return 2
    checks = run_checks(stage, train_cfg, with_inputs=not args.doctor)
    print(table(stage, checks), flush=True)
    if doctor_job and not args.report:
        args.report = str(Path(train_cfg["job"]["output_dir"]) / "preflight.json")
    if args.report:
        report = Path(args.report)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(
            json.dumps({"stage": stage, "host": os.uname().nodename, "checks": [asdict(c) for c in checks]})
        )
        return 0
    failed = next((c for c in checks if not c.ok), None)
    if failed is not None:
        print(f"error: preflight {stage}: {failed.name}: {failed.detail}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
