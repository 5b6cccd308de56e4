"""What a node script calls: resolve its inputs at run time, publish its one output when done.

Everything comes from the job's ``train.yaml`` (see docs/architecture.md): ``run:`` names the inputs,
``output:`` the artifact to publish, ``job:`` the registry root and the producing run. W&B settings,
when present, come as a plain dict from ``job.wandb`` (or a top-level ``wandb:`` section); the
secrets themselves stay in the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron.artifacts.model import DEFAULT_ALIAS, Artifact
from nemotron.artifacts.registry import Registry
from nemotron.errors import UserError


def _job(train_cfg: dict[str, Any]) -> dict[str, Any]:
    job = train_cfg.get("job")
    if not isinstance(job, dict) or not job.get("artifacts_root"):
        raise UserError("train.yaml has no job.artifacts_root", hint="it is written by the submit side; resubmit")
    return job


def wandb_settings_dict(train_cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The ``[wandb]`` dict carried by train.yaml, if any."""
    job = train_cfg.get("job") or {}
    return job.get("wandb") or train_cfg.get("wandb") or None


def registry_for(train_cfg: dict[str, Any], with_mirror: bool = True) -> Registry:
    """The job's registry, mirroring to W&B when train.yaml carries ``[wandb]`` settings."""
    job = _job(train_cfg)
    mirror = None
    if with_mirror:
        from nemotron.artifacts.wandb_mirror import WandbMirror, WandbSettings

        settings = WandbSettings.from_dict(wandb_settings_dict(train_cfg))
        if settings is not None and settings.mode != "disabled":
            mirror = WandbMirror(settings)
    return Registry(Path(job["artifacts_root"]), mirror=mirror)


def resolve_inputs(train_cfg: dict[str, Any]) -> dict[str, Artifact]:
    """``{slot: Artifact}`` for the job's ``run:`` section, checked against the stage's input ports.

    Fails with a ``UserError`` naming the producing stage when an input is missing, when its kind
    does not fit the slot, or when its data is not visible from this node.
    """
    from nemotron.artifacts.resolve import resolve_run_refs

    job = _job(train_cfg)
    registry = registry_for(train_cfg, with_mirror=False)
    resolved = resolve_run_refs(train_cfg.get("run") or {}, registry, stage=job.get("stage"))
    from nemotron.artifacts.add import reference_problem

    for slot, art in resolved.items():
        if "://" not in art.path and not Path(art.path).exists():
            raise UserError(
                f"run.{slot}={art.ref} points at {art.path}, which does not exist on this node",
                hint="put outputs and the artifacts root on a filesystem shared with the compute nodes",
            )
        problem = reference_problem(art)  # data registered in place may have changed since submit
        if problem:
            raise UserError(f"run.{slot}: {problem}")
        registry.verify(art, what=f"run.{slot}={art.ref}")  # tampered or overwritten data stops here
    return resolved


def check_output_dir(train_cfg: dict[str, Any]) -> None:
    """Refuse to write into a directory that already holds another job's published artifact.

    Published data is immutable: a job that reused such an ``output_dir`` would change what the
    owner's record describes. The same job (a Slurm requeue) may continue in its own directory.
    """
    job = _job(train_cfg)
    owner = registry_for(train_cfg, with_mirror=False).owner_of(job["output_dir"])
    if owner is not None and owner.run.job_id != job.get("id"):
        raise UserError(
            f"output_dir {job['output_dir']} holds the published {owner.ref} (job {owner.run.job_id or '?'})",
            hint="published directories are immutable: choose a new output_dir, or leave it unset",
        )


def resolve_config(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """``train_cfg`` with every ``${art:...}`` expanded through the job's registry."""
    from nemotron.artifacts.resolve import resolve_art_refs

    return resolve_art_refs(train_cfg, registry_for(train_cfg, with_mirror=False))


def publish_output(
    train_cfg: dict[str, Any],
    path: Path | str,
    metadata: dict[str, Any] | None,
    inputs: dict[str, Artifact],
) -> Artifact:
    """Publish the job's output (``output.name``, kind from the stage's output port) at ``path``.

    Aliases: ``output.aliases`` (default ``latest``) plus ``job.publish_alias`` when set (the pipe
    uses a per-experiment alias so downstream stages read exactly what upstream produced). The
    producing run is the ``job:`` section; ``inputs`` become the lineage edges, slot by slot.
    """
    from nemotron.pipeline.stages import get_stage

    job = _job(train_cfg)
    output = train_cfg.get("output") or {}
    name = output.get("name")
    if not name:
        raise UserError("train.yaml has no output.name", hint="every stage config names the artifact it publishes")
    stage = get_stage(str(job.get("stage", "")))
    aliases = list(output.get("aliases") or [DEFAULT_ALIAS])
    if job.get("publish_alias"):
        aliases.append(str(job["publish_alias"]))
    inputs = dict(inputs or {})
    ordered = {p.slot: inputs.pop(p.slot) for p in stage.inputs if p.slot in inputs}  # port order
    ordered.update(inputs)
    registry = registry_for(train_cfg)
    return registry.publish(
        name=name,
        kind=stage.output.kind,
        path=path,
        metadata=metadata or {},
        inputs=ordered,
        run={**job, "stage": stage.name},
        aliases=aliases,
    )
