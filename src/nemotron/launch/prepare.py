"""Write a stage's job directory (job.yaml + train.yaml) and describe it as a ``PreparedJob``.

job.yaml is the provenance record (who ran what, from which checkout, with which overrides);
train.yaml is exactly what the node script reads. Both are written atomically and redacted: secrets
reach the job as environment variables only.
"""

from __future__ import annotations

import os
import secrets as random_tokens
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nemotron.config.loader import ResolvedConfig
from nemotron.env.secrets import is_secret_name, redact, scrub_text
from nemotron.execution.job import PreparedJob
from nemotron.launch.provenance import git_state, package_versions, submitter
from nemotron.paths import default_outputs_root, jobs_root

# Secrets a job commonly needs: passed through from the submitting environment when set there.
PASS_THROUGH_SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY")


def new_experiment_id(label: str) -> str:
    """Sortable, unique, readable: ``pretrain-20261123-182501-3fa2c1``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{label.replace('.', '-')}-{stamp}-{random_tokens.token_hex(3)}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half-written temp files behind
        raise


def _dump_yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)


def wandb_env(wandb: Mapping[str, Any]) -> dict[str, str]:
    """Non-secret W&B settings from env.toml's [wandb] as the variables wandb itself reads."""
    names = {"project": "WANDB_PROJECT", "entity": "WANDB_ENTITY", "mode": "WANDB_MODE", "base_url": "WANDB_BASE_URL"}
    env = {var: str(wandb[key]) for key, var in names.items() if wandb.get(key) not in (None, "")}
    if env:
        # fail fast without network instead of hanging a job for minutes (see docs/artifacts.md)
        env.setdefault("WANDB_HTTP_TIMEOUT", "10")
        env.setdefault("WANDB_INIT_TIMEOUT", "30")
    return env


def prepare_job(
    resolved: ResolvedConfig,
    *,
    experiment_id: str,
    profile: Any,
    env_file: Any,
    argv: list[str],
    cli_overrides: Mapping[str, Any],
    dry_run: bool = False,
    depends_on: tuple[str, ...] = (),
    publish_alias: str | None = None,
    passthrough: list[str] | None = None,
    step: str | None = None,
) -> PreparedJob:
    """Create ``<jobs root>/<experiment>/<stage>/{job,train}.yaml`` and return the job description.

    ``step`` (a pipe step id such as ``pretrain.phase2``) replaces the stage name in the job id and
    directory, so one experiment can run a stage more than once.
    """
    stage = resolved.stage
    label = step or stage.name
    job_id = f"{experiment_id}--{label.replace('.', '-')}"
    root = Path(profile.job_dir).expanduser() if getattr(profile, "job_dir", None) else jobs_root()
    job_dir = root / experiment_id / label
    data = resolved.data
    output_dir = Path(data.get("output_dir") or default_outputs_root() / data["output"]["name"] / job_id)
    git = git_state()
    job_section: dict[str, Any] = {
        "id": job_id,
        "experiment": experiment_id,
        "stage": stage.name,
        "config_name": resolved.name,
        "config_hash": resolved.config_hash,
        "dir": str(job_dir),
        "output_dir": str(output_dir),
        "artifacts_root": str(env_file.artifacts_root),
        "git_rev": git["rev"],
        # relative paths the user typed (data.inputs=[a.jsonl]) mean "relative to where I ran the command"
        "submit_cwd": os.getcwd(),
    }
    if env_file.wandb:
        # the node mirrors publishes to W&B with these settings; API keys travel as env vars only
        job_section["wandb"] = redact(dict(env_file.wandb))
    if publish_alias:
        job_section["publish_alias"] = publish_alias
    if passthrough:
        job_section["passthrough"] = list(passthrough)
    train_cfg = {**data, "job": job_section}

    env = {**wandb_env(env_file.wandb), **profile.public_env()}
    secret_names = set(profile.secret_env_names())
    secret_names.update(name for name in PASS_THROUGH_SECRETS if os.environ.get(name))
    secret_values = [v for k, v in {**os.environ, **profile.secret_env()}.items() if is_secret_name(k)]

    job_record = {
        "job_id": job_id,
        "experiment_id": experiment_id,
        "stage": stage.name,
        "command": f"nemotron super3 {stage.display}",
        "argv": [scrub_text(a, secret_values) for a in argv],
        "dry_run": dry_run,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"name": resolved.name, "hash": resolved.config_hash},
        "overrides": redact(dict(cli_overrides)),
        "profile": {"name": profile.name, "describe": profile.describe(), "env_vars": sorted(profile.env_vars)},
        "inputs": dict(data.get("run") or {}),
        "output": data["output"]["name"],
        "depends_on": list(depends_on),
        "git": git,
        "versions": package_versions(),
        "submitter": submitter(),
        "train_yaml": str(job_dir / "train.yaml"),
    }
    train_text = scrub_text(_dump_yaml(redact(train_cfg)), secret_values)
    write_atomic(job_dir / "train.yaml", train_text)
    write_atomic(job_dir / "job.yaml", scrub_text(_dump_yaml(job_record), secret_values))
    from nemotron.launch.library import LIBRARY_FILE, library_config

    library = library_config(stage, redact(train_cfg))
    if library is not None:
        write_atomic(job_dir / LIBRARY_FILE, scrub_text(_dump_yaml(library), secret_values))
    return PreparedJob(
        stage=stage,
        job_id=job_id,
        experiment_id=experiment_id,
        job_dir=job_dir,
        train_yaml=job_dir / "train.yaml",
        job_yaml=job_dir / "job.yaml",
        train_cfg=train_cfg,
        env=env,
        secret_env_names=tuple(sorted(secret_names)),
        depends_on=depends_on,
    )
