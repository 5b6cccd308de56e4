"""Validation of a merged stage config, with errors a person can act on in one line."""

from __future__ import annotations

from typing import Any

from nemotron.config.keys import schema_keys, suggest
from nemotron.config.overrides import flatten
from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _unknown_key_error(stage: Stage, raw: dict[str, Any], loc: tuple[Any, ...], keys: list[str]) -> UserError:
    """Name the full mistyped key (``trian.train_iters``) and the closest real one."""
    bad = _dotted(loc)
    node: Any = raw
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
    typed = [f"{bad}.{k}" for k in flatten(node)] if isinstance(node, dict) and node else [bad]
    typed_key = typed[0]
    guess = suggest(typed_key, keys)
    hint = f"did you mean {guess}?" if guess else f"see `nemotron super3 config show {stage.display}` for the keys"
    return UserError(f"unknown config key '{typed_key}' for stage '{stage.display}'", hint=hint)


def _format_value_error(err: dict[str, Any]) -> str:
    where = _dotted(err["loc"])
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] in ("value_error", "assertion_error") and (not where or where in msg):
        return msg
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"{where or 'config'}: {msg}{shown}"


def validate_stage_config(stage: Stage, raw: dict[str, Any], *, check_layout: bool = True) -> dict[str, Any]:
    """Validate ``raw`` against the stage's schema and layout rules; return the populated dict."""
    from pydantic import ValidationError

    from nemotron.config.parallelism import check_parallelism
    from nemotron.config.schemas.registry import schema_for

    schema = schema_for(stage.name)
    slots = {port.slot for port in stage.inputs}
    for slot in (raw.get("run") or {}) if isinstance(raw.get("run"), dict) else ():
        if slot not in slots:
            guess = suggest(slot, sorted(slots))
            hint = (
                f"did you mean run.{guess}?" if guess else f"inputs of this stage: {', '.join(sorted(slots)) or 'none'}"
            )
            raise UserError(f"'run.{slot}' is not an input of stage '{stage.display}'", hint=hint)
    try:
        model = schema.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        if first["type"] == "extra_forbidden":
            raise _unknown_key_error(stage, raw, first["loc"], schema_keys(schema)) from None
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise UserError(f"invalid config for stage '{stage.display}': {_format_value_error(first)}{more}") from None
    if check_layout:
        check_parallelism(model)
    return model.model_dump(mode="json")
