"""The dotted keys a schema accepts, for "did you mean ...?" suggestions."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any


def _model_types(annotation: Any) -> list[type]:
    """Pydantic model classes inside an annotation such as ``Section | None``."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _model_types(arg)]
    return []


def schema_keys(model: type, prefix: str = "") -> list[str]:
    """Every dotted key of a pydantic model class, sections included (``train``, ``train.train_iters``)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        for sub in _model_types(field.annotation):
            keys.extend(schema_keys(sub, dotted + "."))
    return keys


def suggest(key: str, candidates: list[str]) -> str | None:
    """The closest candidate to a mistyped dotted key, if any is close enough.

    Whole keys are compared first; failing that, the last component alone (``train.iters`` ->
    ``train.train_iters``).
    """
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    if match:
        return match[0]
    leaf = key.rsplit(".", 1)[-1]
    by_leaf: dict[str, str] = {}
    for cand in candidates:
        by_leaf.setdefault(cand.rsplit(".", 1)[-1], cand)
    match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.8)
    return by_leaf[match[0]] if match else None
