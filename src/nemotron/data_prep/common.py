"""Small helpers the three stage modules share: config validation and tokenizer/plan setup."""

from __future__ import annotations

from typing import Any

from nemotron.errors import UserError


def validate(cfg: Any, schema: type) -> Any:
    """Accept the validated pydantic model or a plain dict (validated here with ``schema``)."""
    if isinstance(cfg, schema):
        return cfg
    if isinstance(cfg, dict):
        from pydantic import ValidationError

        try:
            return schema.model_validate({k: v for k, v in cfg.items() if k != "job"})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UserError(f"invalid config: {where}: {first['msg']}") from None
    raise TypeError(f"expected {schema.__name__} or dict, got {type(cfg).__name__}")


def tokenizer_summary(settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``tokenizer`` entry, from plan settings holding ``tokenizer`` (``spec.describe()``)
    and ``vocab_size``: one shape for every tokenized stage, so consumers read it the same way."""
    tok = settings["tokenizer"]
    return {"path": tok["path"], "kind": tok["kind"], "sha256": tok["sha256"], "vocab_size": settings["vocab_size"]}
