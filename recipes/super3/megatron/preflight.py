"""Node preflight for the Megatron-Bridge stages: the checks one process runs before torchrun fans out.

Each stage module (pretrain, sft, quantize) exposes ``preflight(train_cfg) -> list[Check]`` built from
these helpers; the node's preflight (``nemotron.node.preflight``) calls it inside the container and
exits 2 with one line on the first failed check. Why before torchrun: a wrong container, a key the
library does not know or an input it cannot load fails in seconds on one process instead of after
every rank has loaded a 120B model. Importable on CPU: the libraries are imported inside the checks.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.node.preflight import Check


def check(name: str, ok: bool, detail: str) -> Check:
    """One row of the node's preflight table."""
    return Check(name=name, ok=ok, detail=detail)


def installed_version(distribution: str, import_name: str) -> str | None:
    """The installed version of a library: its distribution metadata, else the module's ``__version__``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(import_name)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return None
    return getattr(module, "__version__", None)


def version_checks(libraries: tuple[str, ...]) -> list[Any]:
    """Each pinned library of the Megatron-Bridge container, installed at the pinned version."""
    from super3.megatron.common import stage_container

    pins = stage_container()
    out = []
    for library in libraries:
        pin = pins.pin(library)
        found = installed_version(pin.library, pin.import_name)
        if found is None:
            out.append(
                check(
                    library,
                    False,
                    f"{pin.import_name} is not installed; run this stage in {pins.image} (resources.container)",
                )
            )
        elif not pin.accepts(found):
            out.append(
                check(
                    library,
                    False,
                    f"{library} {found} in this container, but the stage is pinned to {pin.version} ({pin.repo}@{pin.tag}); "
                    f"use resources.container={pins.image}",
                )
            )
        else:
            out.append(check(library, True, f"{found} (pinned {pin.version}, {pin.repo}@{pin.tag})"))
    return out


def ensure_pinned(libraries: tuple[str, ...]) -> None:
    """Raise one ``UserError`` for the first library not at its pin (the launch path's own guard, so a
    mismatched container fails before the recipe runs even where the node preflight is not wired)."""
    for result in version_checks(libraries):
        if not result.ok:
            raise UserError(result.detail)


def guarded(name: str, action: Callable[[], str]) -> Any:
    """Run one check; a ``UserError`` or library exception becomes a failed check with one line."""
    try:
        return check(name, True, action())
    except UserError as exc:
        return check(name, False, exc.one_line())
    except Exception as exc:  # noqa: BLE001 - the library's own validation raises anything
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return check(name, False, f"{type(exc).__name__}: {first}"[:300])


@contextmanager
def world_size(train_cfg: dict[str, Any]) -> Iterator[None]:
    """``WORLD_SIZE`` as torchrun will set it, so the recipe's validation computes the real DP size."""
    res = train_cfg.get("resources") or {}
    size = int(res.get("nodes", 1)) * int(res.get("gpus_per_node", 1))
    before = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = str(size)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = before


def validate_bridge_config(job: Any, train_cfg: dict[str, Any]) -> str:
    """Build the recipe's ConfigContainer, overlay our keys and run the recipe's own ``validate()``.

    The recipe builds its model provider from the HF config of ``NEMOTRON_3_SUPER_HF_MODEL_ID``, so
    this needs the hub or a populated HF cache on the node (the training job needs the same).
    """
    from super3.megatron.common import build_bridge_config

    with world_size(train_cfg):
        cfg = build_bridge_config(job)
        cfg.validate()
    return f"{job.recipe}() + {len(job.overrides)} overrides validated (data parallel {cfg.data_parallel_size})"


def load_tokenizer(job: Any, train_cfg: dict[str, Any]) -> str:
    """Load the data's tokenizer the way the library will and compare its vocabulary to the model's."""
    from pathlib import Path

    model = job.overrides["tokenizer.tokenizer_model"]
    if not Path(model).exists():
        raise UserError(f"the data's tokenizer {model} is not readable on this node", hint="put it on shared storage")
    if job.overrides["tokenizer.tokenizer_type"] != "HuggingFaceTokenizer":
        return f"{model} (tiktoken)"
    from transformers import AutoTokenizer

    size = len(AutoTokenizer.from_pretrained(model))
    if size > train_cfg["model"]["vocab_size"]:
        raise UserError(f"tokenizer {model} has {size} tokens, more than model.vocab_size")
    return f"{model} ({size} tokens)"


def resolved_inputs(train_cfg: dict[str, Any]) -> dict[str, Any]:
    from nemotron.artifacts.node import resolve_inputs

    return resolve_inputs(train_cfg)


def translation_checks(
    train_cfg: dict[str, Any],
    libraries: tuple[str, ...],
    build: Callable[[dict[str, Any], dict[str, Any], Path], Any],
    describe: Callable[[Any], str],
) -> tuple[list[Check], Any | None]:
    """Pinned versions, then the stage's translation on the node's real inputs.

    Returns the checks so far and the translated job (None when a check failed), so each stage adds
    only its own checks on top (tokenizer, recipe validation, ModelOpt configs).
    """
    checks = version_checks(libraries)
    if not all(c.ok for c in checks):
        return checks, None
    output_dir = Path((train_cfg.get("job") or {}).get("output_dir") or ".")
    built: dict[str, Any] = {}

    def translate() -> str:
        built["job"] = build(train_cfg, resolved_inputs(train_cfg), output_dir)
        return describe(built["job"])

    checks.append(guarded("inputs", translate))
    return checks, built.get("job")
