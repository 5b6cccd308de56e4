"""Resolve a stage's configuration: default.yaml <- named config <- env profile <- command line.

The result keeps every layer's contribution so the dry-run plan can show what changed and where it
came from, and a content hash so the pipeline can tell "this exact config already ran".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.config.merge import deep_merge
from nemotron.config.overrides import flatten, set_dotted
from nemotron.errors import UserError
from nemotron.paths import CONFIGS_DIR
from nemotron.pipeline.stages import Stage

DEFAULT_NAME = "default"
# Keys that say where/how a stage runs or which inputs it reads, not what it computes: they do not
# change the config hash (input identity is tracked through the artifacts' lineage instead).
HASH_EXCLUDED = ("run", "resources", "output_dir", "logging")


@dataclass
class ResolvedConfig:
    """A stage config after all layers, validated."""

    stage: Stage
    name: str  # "default", "tiny", or the path given with -c
    data: dict[str, Any]  # validated, fully populated (schema defaults included)
    defaults: dict[str, Any]  # default.yaml validated the same way, for the diff
    sources: dict[str, str] = field(default_factory=dict)  # dotted key -> layer that set it last

    @property
    def config_hash(self) -> str:
        return config_hash(self.data)

    def diff(self) -> list[tuple[str, Any, Any, str]]:
        """``(key, default, resolved, source)`` for every key that differs from default.yaml."""
        base, now = flatten(self.defaults), flatten(self.data)
        rows = []
        for key in sorted(set(base) | set(now)):
            if base.get(key) != now.get(key):
                rows.append((key, base.get(key), now.get(key), self._source(key)))
        return rows

    def _source(self, key: str) -> str:
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return "schema"


def config_hash(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the config without the keys in ``HASH_EXCLUDED`` or ``job``."""
    payload = {k: v for k, v in data.items() if k not in (*HASH_EXCLUDED, "job")}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def stage_config_dir(stage: Stage) -> Path:
    return CONFIGS_DIR / stage.config_dir


def available_configs(stage: Stage) -> list[str]:
    """Named configs of a stage (file stems), ``default`` first."""
    names = sorted(p.stem for p in stage_config_dir(stage).glob("*.yaml"))
    return sorted(names, key=lambda n: (n != DEFAULT_NAME, n))


def find_config(stage: Stage, name_or_path: str) -> Path:
    """A named config of the stage (``tiny``) or a YAML file path (``./my.yaml``)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if candidate.is_dir():
            raise UserError(f"config path {candidate} is a directory", hint="pass a YAML file (or a config name)")
        if candidate.exists() and not candidate.is_file():
            raise UserError(
                f"config path {candidate} is not a regular file", hint="pass a YAML file (or a config name)"
            )
        if not candidate.is_file():
            raise UserError(
                f"config file {candidate} does not exist", hint="pass a config name or an existing YAML path"
            )
        return candidate
    path = stage_config_dir(stage) / f"{name_or_path}.yaml"
    if not path.is_file() and candidate.is_dir():
        raise UserError(f"config path {candidate} is a directory", hint="pass a YAML file (or a config name)")
    if not path.is_file():
        known = ", ".join(available_configs(stage)) or "none"
        raise UserError(
            f"no config '{name_or_path}' for stage '{stage.display}'",
            hint=f"available: {known} (or pass a path to a YAML file)",
        )
    return path


def read_yaml(path: Path, *, allow_empty: bool = True) -> dict[str, Any]:
    """A YAML mapping; a malformed, binary or (unless allowed) empty file is a one-line user error."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file (binary content)", hint="pass a YAML config file") from None
    if not allow_empty and not text.strip():
        raise UserError(f"config file {path} is empty", hint="put config keys in it, or leave -c out for the defaults")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{where}: {problem}", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must contain a mapping of config keys at the top level")
    return data


def _layer_sources(layer: dict[str, Any], label: str) -> dict[str, str]:
    return {key: label for key in flatten(layer)}


FOLLOW_TRAIN_ITERS = ("optimizer.decay_iters", "optimizer.wsd_decay_iters")
"""Schedule lengths that describe one particular run length: when a later layer changes
``train.train_iters`` and leaves them alone, they go back to null (= follow ``train_iters``), so a
shortened run still decays its learning rate instead of inheriting the 25T-token schedule."""


def _layer_rank(label: str) -> int:
    return 0 if label == "default" else 1 if label.startswith("config:") else 2 if label.startswith("profile:") else 3


def _follow_train_iters(raw: dict[str, Any], sources: dict[str, str]) -> None:
    iters_from = sources.get("train.train_iters")
    if iters_from is None:
        return
    flat = flatten(raw)
    for key in FOLLOW_TRAIN_ITERS:
        origin = sources.get(key)
        if origin is not None and flat.get(key) is not None and _layer_rank(origin) < _layer_rank(iters_from):
            set_dotted(raw, key, None)
            sources[key] = f"follows train.train_iters ({iters_from})"


def load_stage_config(
    stage: Stage,
    config: str | None = None,
    *,
    profile_overrides: dict[str, Any] | None = None,
    profile_name: str | None = None,
    cli_overrides: dict[str, Any] | None = None,
) -> ResolvedConfig:
    """Merge and validate the config layers for ``stage``; raise UserError on any problem."""
    from nemotron.config.validate import validate_stage_config

    default_path = stage_config_dir(stage) / f"{DEFAULT_NAME}.yaml"
    raw = read_yaml(default_path) if default_path.is_file() else {}
    sources = _layer_sources(raw, "default")
    name = DEFAULT_NAME
    if config and config != DEFAULT_NAME:
        path = find_config(stage, config)
        layer = read_yaml(path, allow_empty=False)
        raw = deep_merge(raw, layer)
        name = config
        sources.update(_layer_sources(layer, f"config:{config}"))
    for label, dotted in ((f"profile:{profile_name}", profile_overrides), ("cli", cli_overrides)):
        for key, value in (dotted or {}).items():
            set_dotted(raw, key, value)
            sources[key] = label
    _follow_train_iters(raw, sources)
    defaults = read_yaml(default_path) if default_path.is_file() else raw
    data = validate_stage_config(stage, raw)
    default_data = validate_stage_config(stage, defaults, check_layout=False)
    return ResolvedConfig(stage=stage, name=name, data=data, defaults=default_data, sources=sources)
