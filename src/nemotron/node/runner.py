"""The one entry every node script calls: train.yaml in, one published artifact out.

``recipes/super3/<stage>.py`` puts ``recipes/`` on ``sys.path`` and calls ``main("<stage>")``. The
runner reads and validates train.yaml, resolves the ``run:`` inputs through the registry, imports
``super3.<backend>.<stage>`` and calls its ``run(train_cfg, inputs, output_dir) -> metadata``. Only
after ``run`` returned does global rank 0 publish ``output.name`` at ``job.output_dir``: a crashed or
killed stage never leaves a half-written artifact behind, and the other ranks never publish twice.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from nemotron.errors import UserError
from nemotron.node import quiet
from nemotron.node.logs import get_logger, setup_logging
from nemotron.node.ranks import global_rank, is_rank_zero

NON_SCHEMA_SECTIONS = ("job", "wandb")
"""train.yaml sections written by the submit side, not part of a stage's config schema."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one nemotron stage on this node from its train.yaml.")
    parser.add_argument("--config", required=True, help="path to the job's train.yaml")
    return parser.parse_args(argv)


def load_train_yaml(path: str | Path) -> dict[str, Any]:
    """train.yaml as a dict; a missing, unreadable or malformed file is a one-line ``UserError``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"train.yaml not found: {path}", hint="pass --config <job dir>/train.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: {getattr(exc, 'problem', None) or 'invalid YAML'}", hint="fix the YAML") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping (the resolved stage config plus job:)")
    return data


def check_job(train_cfg: dict[str, Any], stage_name: str) -> dict[str, Any]:
    """The ``job:`` section, checked: it names this script's stage and an output directory."""
    job = train_cfg.get("job")
    if not isinstance(job, dict):
        raise UserError("train.yaml has no job: section", hint="train.yaml is written by the submit side; resubmit")
    for key in ("stage", "output_dir", "artifacts_root"):
        if not job.get(key):
            raise UserError(f"train.yaml has no job.{key}", hint="train.yaml is written by the submit side; resubmit")
    stage = str(job["stage"])
    if stage != stage_name and not stage.startswith(stage_name + "."):
        raise UserError(
            f"this train.yaml is for stage '{stage}', not '{stage_name}'",
            hint=f"run it with the {stage.split('.')[0]}.py entry script",
        )
    return job


def validate_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """Re-validate the stage sections against the schema (defaults filled in); ``job:`` is kept as is."""
    from nemotron.config.validate import validate_stage_config
    from nemotron.pipeline.stages import get_stage

    stage = get_stage(str(train_cfg["job"]["stage"]))
    body = {k: v for k, v in train_cfg.items() if k not in NON_SCHEMA_SECTIONS}
    validated = validate_stage_config(stage, body, check_layout=False)
    return {**validated, **{k: train_cfg[k] for k in NON_SCHEMA_SECTIONS if k in train_cfg}}


BACKEND_MODULES = {"model": "convert"}
"""Entry stage name -> backend module when they differ (``model import|export`` -> ``super3.<backend>.convert``)."""


def backend_module_name(train_cfg: dict[str, Any], stage_name: str) -> str:
    """``super3.<backend>.<stage>`` (``super3.megatron.rl`` for every RL sub-stage)."""
    backend = train_cfg.get("backend")
    if backend not in ("tiny", "megatron"):
        raise UserError(f"train.yaml backend '{backend}' is not one of tiny, megatron")
    return f"super3.{backend}.{BACKEND_MODULES.get(stage_name, stage_name)}"


def load_backend(name: str) -> ModuleType:
    """Import the backend module and check it offers ``run``."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserError(
                f"no backend module {name}", hint="run the node script from a checkout whose recipes/ holds it"
            ) from None
        raise
    if not callable(getattr(module, "run", None)):
        raise UserError(f"backend module {name} has no run(train_cfg, inputs, output_dir) function")
    return module


def _check_metadata(metadata: Any, module: str) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"{module}.run() returned {type(metadata).__name__}, expected a metadata dict")
    json.dumps(metadata)  # the registry stores JSON; fail here, before publishing, if it cannot
    return metadata


def run_stage(stage_name: str, argv: list[str] | None = None, *, module: str | None = None) -> Any:
    """Run the stage from train.yaml; return the published Artifact on rank 0, else ``None``."""
    args = parse_args(argv)
    raw = load_train_yaml(args.config)
    job = check_job(raw, stage_name)
    rank = global_rank()
    log = setup_logging(rank)
    train_cfg = validate_config(raw)
    name = module or backend_module_name(train_cfg, stage_name)
    backend = load_backend(name)
    from nemotron.artifacts.node import check_output_dir, publish_output, resolve_inputs

    check_output_dir(train_cfg)
    inputs = resolve_inputs(train_cfg)
    output_dir = Path(job["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    for slot, art in sorted(inputs.items()):
        log.info("input %s = %s:v%s at %s", slot, art.name, art.version, art.path)
    log.info("stage %s (job %s) running %s.run -> %s", job["stage"], job.get("id", "?"), name, output_dir)
    started = time.monotonic()
    quiet.install()  # known library notices: counted, one summary line each at the end (main)
    metadata = _check_metadata(backend.run(train_cfg, inputs, output_dir), name)
    log.info("%s.run finished in %.1f s", name, time.monotonic() - started)
    if not is_rank_zero():
        log.info("rank %d done; rank 0 publishes the output", rank)
        return None
    artifact = publish_output(train_cfg, output_dir, metadata, inputs)
    log.info("published %s:v%s (%s) at %s", artifact.name, artifact.version, artifact.kind, artifact.path)
    return artifact


def main(stage_name: str, argv: list[str] | None = None, *, module: str | None = None) -> None:
    """Entry of ``recipes/super3/<stage>.py``. User errors print one line and exit 2."""
    from nemotron.bytecode import enable_bytecode_cache

    enable_bytecode_cache()  # before torch & co. are imported: compiled once per user, not per job
    if not sys.stderr.isatty():
        # job logs are files: carriage-return progress bars from libraries only bury the real lines
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        try:
            run_stage(stage_name, argv, module=module)
        finally:
            for line in quiet.summary_lines():
                get_logger().info(line)
    except UserError as err:
        print(f"error: {err.one_line()}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except OSError as exc:
        from nemotron.errors import from_os_error

        err = from_os_error(exc)
        if err is None:
            raise
        print(f"error: {err.one_line()}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
