"""Command-line ``key=value`` overrides (dotlist), torchtune/Hydra style.

Values are parsed as YAML scalars/flow collections so ``train.train_iters=5`` is an int,
``precision=fp8`` a string, ``"data.inputs=[a.jsonl, b.jsonl]"`` a list and ``run.model=null`` null.
"""

from __future__ import annotations

import re
from typing import Any

from nemotron.errors import UserError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def is_override(arg: str) -> bool:
    """True for ``key=value`` arguments (as opposed to options or stray words)."""
    return "=" in arg and not arg.startswith("-")


def parse_value(text: str) -> Any:
    """YAML-typed value; falls back to the raw string when it is not valid YAML."""
    import yaml

    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x]"]`` into ``{"a.b": 1, "c": ["x"]}``; later ones win."""
    parsed: dict[str, Any] = {}
    for arg in args:
        if not is_override(arg):
            raise UserError(
                f"unexpected argument '{arg}'",
                hint="overrides look like key=value, e.g. train.train_iters=10",
            )
        key, _, value = arg.partition("=")
        key = key.strip()
        if not _KEY.match(key):
            raise UserError(f"'{key}' is not a config key", hint="use dotted names such as train.train_iters=10")
        parsed[key] = parse_value(value)
    return parsed


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``cfg[a][b] = value`` for ``a.b``, creating missing sections (validation catches typos)."""
    parts = dotted.split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise UserError(f"cannot set '{dotted}': '{where}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def get_dotted(cfg: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
