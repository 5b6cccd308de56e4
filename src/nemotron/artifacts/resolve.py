"""Expand ``${art:NAME[:ALIAS],FIELD}`` in configs through the registry.

A config can point at a field of an artifact instead of a hard-coded path, e.g.
``tokenizer.path: ${art:sft-data,metadata.tokenizer}`` or ``data.blend: ${art:pretrain-data,path}/blend.json``.
The submit side expands them for ``--dry-run`` (so the plan shows real paths); the node expands them
again at run time (the registry may have moved on between submit and start).

FIELD (default ``path``): ``path``, ``version``, ``digest``, ``kind``, ``name``, ``ref`` (exact
``name:vN``), ``created_at``, ``metadata.<key>[.<key>...]``, ``run.<field>``. A string that is
exactly one reference becomes the field's value with its type (``version`` is an int); a reference
inside a longer string is substituted as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nemotron.artifacts.model import Artifact
from nemotron.errors import UserError

ART_REF = re.compile(r"\$\{art:\s*([^,}\s]+)\s*(?:,\s*([^}\s]+)\s*)?\}")
SIMPLE_FIELDS = ("path", "version", "digest", "kind", "name", "ref", "created_at")


def field_value(artifact: Artifact, field: str) -> Any:
    """The value of ``field`` (see module docstring) on ``artifact``; ``UserError`` if it has none."""
    if field in SIMPLE_FIELDS:
        return getattr(artifact, field)
    head, _, rest = field.partition(".")
    if head == "metadata" and rest:
        value: Any = artifact.metadata
        for key in rest.split("."):
            if not isinstance(value, Mapping) or key not in value:
                keys = ", ".join(sorted(value)) if isinstance(value, Mapping) else "none"
                raise UserError(
                    f"artifact {artifact.ref} has no metadata.{rest}",
                    hint=f"keys at that level: {keys}",
                )
            value = value[key]
        return value
    if head == "run" and rest:
        data = artifact.run.to_dict()
        if rest in data:
            return data[rest]
    raise UserError(
        f"unknown artifact field '{field}' (in {artifact.ref})",
        hint=f"use one of {', '.join(SIMPLE_FIELDS)}, metadata.<key>, run.<field>",
    )


def resolve_art_refs(cfg: Any, registry: Any, _cache: dict[str, Artifact] | None = None) -> Any:
    """A copy of ``cfg`` with every ``${art:...}`` expanded; each ref is looked up once per call.

    Looking each reference up once keeps ``${art:x,path}`` and ``${art:x,version}`` consistent even
    if someone publishes a new ``x`` meanwhile.
    """
    cache: dict[str, Artifact] = {} if _cache is None else _cache

    def lookup(ref: str) -> Artifact:
        if ref not in cache:
            cache[ref] = registry.get(ref)
        return cache[ref]

    if isinstance(cfg, Mapping):
        return {key: resolve_art_refs(value, registry, cache) for key, value in cfg.items()}
    if isinstance(cfg, list | tuple):
        return type(cfg)(resolve_art_refs(value, registry, cache) for value in cfg)
    if not isinstance(cfg, str) or "${art:" not in cfg:
        return cfg
    whole = ART_REF.fullmatch(cfg.strip())
    if whole:
        return field_value(lookup(whole.group(1)), whole.group(2) or "path")
    expanded = ART_REF.sub(lambda m: str(field_value(lookup(m.group(1)), m.group(2) or "path")), cfg)
    if "${art:" in expanded:
        raise UserError(f"malformed artifact reference in '{cfg}'", hint="write ${art:NAME[:ALIAS],FIELD}")
    return expanded


def find_art_refs(cfg: Any) -> list[str]:
    """Every artifact reference named by ``${art:...}`` in ``cfg`` (for plans and dependency checks)."""
    found: list[str] = []
    if isinstance(cfg, Mapping):
        for value in cfg.values():
            found.extend(find_art_refs(value))
    elif isinstance(cfg, list | tuple):
        for value in cfg:
            found.extend(find_art_refs(value))
    elif isinstance(cfg, str):
        found.extend(m.group(1) for m in ART_REF.finditer(cfg))
    return list(dict.fromkeys(found))


def resolve_run_refs(run: Mapping[str, Any], registry: Any, stage: str | None = None) -> dict[str, Artifact]:
    """Resolve a config's ``run:`` section (slot -> ``NAME[:ALIAS]``) to exact artifacts.

    Used by the submit side (dry-run plans) and by the node (``node.resolve_inputs``). Empty slots are
    skipped; with ``stage``, each artifact's kind must match the slot's port and required ports must
    be set.
    """
    ports = {}
    stage_obj = None
    if stage:
        from nemotron.pipeline.stages import get_stage

        stage_obj = get_stage(stage)
        ports = {port.slot: port for port in stage_obj.inputs}
    resolved: dict[str, Artifact] = {}
    failures: list[tuple[str, UserError]] = []
    order = [slot for slot in ports if slot in (run or {})] + [slot for slot in (run or {}) if slot not in ports]
    for slot in order:
        ref = run[slot]
        if ref in (None, ""):
            continue
        if isinstance(ref, str) and ref.startswith("${art:"):
            ref = resolve_art_refs(ref, registry)
            ref = ref.ref if isinstance(ref, Artifact) else str(ref)
        try:
            art = registry.get(str(ref))
        except UserError as exc:
            failures.append((slot, exc))  # report every missing input at once
            continue
        port = ports.get(slot)
        if port is not None and art.kind != port.kind:
            raise UserError(
                f"run.{slot}={ref} is a {art.kind} artifact but stage {stage_obj.name} expects {port.kind}",
                hint=f"point run.{slot} at a {port.kind} artifact",
            )
        resolved[slot] = art
    if len(failures) == 1:
        slot, exc = failures[0]
        raise UserError(f"run.{slot}: {exc.message}", hint=exc.hint)
    if failures:
        raise UserError(
            f"{len(failures)} inputs cannot be resolved: "
            + "; ".join(f"run.{slot}: {exc.message}" for slot, exc in failures),
            hint=" / ".join(exc.hint or "" for _, exc in failures),
        )
    if stage_obj is not None:
        for port in stage_obj.inputs:
            if not port.optional and port.slot not in resolved:
                from nemotron.artifacts.naming import describe_producer, output_name

                raise UserError(
                    f"stage {stage_obj.name} needs input run.{port.slot} ({port.kind}) but none is set",
                    hint=f"set run.{port.slot}=NAME:ALIAS; "
                    + describe_producer(output_name(_producer_of_kind(port.kind))),
                )
    return resolved


def _producer_of_kind(kind: str) -> str:
    from nemotron.pipeline.stages import STAGES

    for stage in STAGES:
        if stage.output.kind == kind:
            return stage.name
    raise KeyError(kind)
