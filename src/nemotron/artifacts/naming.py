"""One naming scheme for artifacts, used by producers (``output.name``) and consumers (``run.*``).

The reference project's stage configs consume names that no stage publishes; here the scheme is
written down once and checked (``check_configs``) against every config under ``configs/``.

Scheme: ``[<variant>-]<tag>[-<qualifier>]-<noun>[-<qualifier>]`` where ``(tag, noun)`` is fixed
per stage (the tag is the stage path with ``-`` for ``.``, except quantize):

=====================  ======================  =================
stage                  default name            kind
=====================  ======================  =================
data_prep.pretrain     pretrain-data           pretrain-data
data_prep.sft          sft-data                sft-data
data_prep.rl           rl-data                 rl-data
pretrain               pretrain-model          model
sft                    sft-model               model
rl.rlvr / swe1 / ...   rl-rlvr-model, ...      model
quantize               quantized-model         quantized-model
eval                   eval-results            eval-results
model.import / export  imported-model, ...     model
=====================  ======================  =================

``variant`` separates worlds that must not mix (``tiny-sft-model`` is never fed to a full-scale
stage); a ``qualifier`` tells apart outputs of one stage, after the tag (``pretrain-phase2-model``,
``sft-lora-model``) or after the noun (``quantized-model-fp8-aggressive``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.pipeline.stages import BY_NAME, STAGES, Stage

STAGE_TAGS: dict[str, tuple[str, str]] = {
    "data_prep.pretrain": ("pretrain", "data"),
    "data_prep.sft": ("sft", "data"),
    "data_prep.rl": ("rl", "data"),
    "pretrain": ("pretrain", "model"),
    "sft": ("sft", "model"),
    "rl.rlvr": ("rl-rlvr", "model"),
    "rl.rlvr2": ("rl-rlvr2", "model"),
    "rl.rlvr3": ("rl-rlvr3", "model"),
    "rl.swe1": ("rl-swe1", "model"),
    "rl.swe2": ("rl-swe2", "model"),
    "rl.rlhf": ("rl-rlhf", "model"),
    "quantize": ("quantized", "model"),
    "eval": ("eval", "results"),
    "model.import": ("imported", "model"),
    "model.export": ("exported", "model"),
}
KNOWN_VARIANTS = ("tiny",)


def output_name(stage: str, variant: str | None = None, qualifier: str | None = None) -> str:
    """The artifact name ``stage`` publishes under the scheme (``output_name("sft", "tiny")``)."""
    tag, noun = STAGE_TAGS[BY_NAME[stage].name]
    return "-".join(part for part in (variant, tag, qualifier, noun) if part)


@dataclass(frozen=True)
class ParsedName:
    stage: str
    variant: str | None
    qualifier: str | None


def parse_name(name: str) -> list[ParsedName]:
    """Every reading of ``name`` under the scheme (usually one; empty when it fits no stage)."""
    readings: list[ParsedName] = []
    for stage, (tag, noun) in STAGE_TAGS.items():
        pattern = (
            rf"^(?:(?P<variant>[A-Za-z0-9]+)-)?{re.escape(tag)}(?:-(?P<qual>[A-Za-z0-9._-]+?))?-{noun}"
            r"(?:-(?P<qual2>[A-Za-z0-9._-]+))?$"
        )
        match = re.match(pattern, name)
        if match:
            qualifier = "-".join(q for q in (match.group("qual"), match.group("qual2")) if q) or None
            readings.append(ParsedName(stage, match.group("variant"), qualifier))
    # A custom variant can make a name readable two ways; readings with a known variant win.
    known = [r for r in readings if r.variant in (None, *KNOWN_VARIANTS)]
    return known or readings


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class StageConfigRefs:
    """The artifact-facing part of one effective stage config (default.yaml merged with FILE)."""

    stage: Stage
    config: str  # config name: default, tiny, phase1, ...
    file: Path
    output: str | None
    run: dict[str, str | None]


def scan_configs(configs_dir: Path) -> list[StageConfigRefs]:
    """Read ``run:`` and ``output.name`` of every stage config (named configs merged over default)."""
    found: list[StageConfigRefs] = []
    for stage in STAGES:
        directory = Path(configs_dir) / stage.config_dir
        if not directory.is_dir():
            continue
        default_file = directory / "default.yaml"
        default = _load_yaml(default_file) if default_file.exists() else {}
        for file in sorted(directory.glob("*.yaml")):
            data = default if file == default_file else _load_yaml(file)
            run = dict(default.get("run") or {})
            out = dict(default.get("output") or {})
            if file != default_file:
                run.update(data.get("run") or {})
                out.update(data.get("output") or {})
            found.append(StageConfigRefs(stage, file.stem, file, out.get("name"), run))
    return found


def config_producers(configs_dir: Path) -> dict[str, set[str]]:
    """Artifact name -> stages whose configs publish it."""
    producers: dict[str, set[str]] = {}
    for cfg in scan_configs(configs_dir):
        if cfg.output:
            producers.setdefault(cfg.output, set()).add(cfg.stage.name)
    return producers


def producing_stages(name: str, configs_dir: Path | None = None) -> list[str]:
    """Which stage(s) publish ``name``: the configs say so first, the naming scheme otherwise."""
    if configs_dir is None:
        from nemotron.paths import CONFIGS_DIR

        configs_dir = CONFIGS_DIR
    try:
        from_configs = config_producers(configs_dir).get(name)
    except Exception:  # a broken YAML elsewhere must not hide the real error being reported
        from_configs = None
    if from_configs:
        return sorted(from_configs)
    return sorted({reading.stage for reading in parse_name(name)})


def describe_producer(name: str, configs_dir: Path | None = None) -> str:
    """A hint naming the stage(s) that publish ``name`` and how to run them."""
    stages = producing_stages(name, configs_dir)
    if not stages:
        return (
            f"no stage publishes '{name}' — check the name "
            "(scheme: [variant-]tag[-qualifier]-noun, e.g. sft-data, tiny-sft-model)"
        )
    runs = ", ".join(f"'{s}' (nemotron super3 {BY_NAME[s].display})" for s in stages)
    return f"it is produced by stage {runs}; run that first"


def check_configs(configs_dir: Path) -> list[str]:
    """Problems in how configs name artifacts; empty when consumers and producers agree.

    Checks, for every effective stage config: its ``output.name`` follows the scheme for its stage;
    every ``run.<slot>`` is an input port of the stage; the referenced name is published by some
    stage config; that stage's output kind is the kind the slot expects; and a variant (``tiny``)
    never consumes another variant's artifacts.
    """
    configs = scan_configs(configs_dir)
    producers: dict[str, set[str]] = {}
    for cfg in configs:
        if cfg.output:
            producers.setdefault(cfg.output, set()).add(cfg.stage.name)
    problems: list[str] = []
    for cfg in configs:
        where = f"{cfg.file.relative_to(configs_dir)}"
        variant = None
        if not cfg.output:
            problems.append(f"{where}: no output.name")
        else:
            readings = [r for r in parse_name(cfg.output) if r.stage == cfg.stage.name]
            if not readings:
                expected = output_name(cfg.stage.name)
                problems.append(
                    f"{where}: output.name '{cfg.output}' does not follow the scheme for stage "
                    f"{cfg.stage.name} (expected e.g. '{expected}' or 'tiny-{expected}')"
                )
            else:
                variant = readings[0].variant
        ports = {port.slot: port for port in cfg.stage.inputs}
        for slot, ref in cfg.run.items():
            if slot not in ports:
                problems.append(f"{where}: run.{slot} is not an input of stage {cfg.stage.name}")
                continue
            if ref is None or str(ref).startswith("${"):
                if ref is None and not (ports[slot].optional or ports[slot].external):
                    problems.append(f"{where}: required input run.{slot} is empty")
                continue
            name = str(ref).split(":", 1)[0]
            makers = producers.get(name)
            if not makers:
                problems.append(f"{where}: run.{slot} asks for '{name}', which no stage config publishes")
                continue
            kinds = {BY_NAME[m].output.kind for m in makers}
            if ports[slot].kind not in kinds:
                problems.append(
                    f"{where}: run.{slot} expects kind {ports[slot].kind} but '{name}' is "
                    f"{'/'.join(sorted(kinds))} (from {', '.join(sorted(makers))})"
                )
            in_variants = {r.variant for r in parse_name(name)}
            if cfg.output and variant not in in_variants and in_variants:
                problems.append(
                    f"{where}: variant '{variant or 'full'}' consumes '{name}' of variant "
                    f"'{'/'.join(sorted(v or 'full' for v in in_variants))}'"
                )
        for port in cfg.stage.inputs:
            if not port.optional and port.slot not in cfg.run:
                problems.append(f"{where}: required input run.{port.slot} ({port.kind}) is missing")
    return problems
