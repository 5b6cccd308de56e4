"""The ``quantized-model`` artifact's metadata: one shape, written and read by both backends.

Why one module: the tiny and megatron quantize stages used to publish different shapes
(``models.<config>.dir`` vs ``configs.<config>.hf_dir``), so each consumer had to know which backend
made the artifact. Now every quantize stage writes ``models.<config> = {dir, format, ...}`` through
``quantized_entry`` and every consumer (eval, tests) reads it through ``quantized_exports``.

    models:
      mamba_moe_fp8_conservative:
        dir: mamba_moe_fp8_conservative/hf   # an HF-loadable directory, relative to the artifact
        format: fp8                          # fp8 | nvfp4
        ...                                  # backend details (modelopt_config, megatron_dir, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

FORMATS = ("fp8", "nvfp4")


@dataclass(frozen=True)
class QuantizedExport:
    """One quantized model inside a quantized-model artifact."""

    config: str  # quantization config name, e.g. mamba_moe_fp8_conservative
    path: Path  # absolute HF-loadable directory
    format: str  # fp8 | nvfp4
    details: dict[str, Any]  # the rest of the entry (backend specific)


def quantized_entry(directory: str, fmt: str, **details: Any) -> dict[str, Any]:
    """One ``models.<config>`` entry; ``directory`` is relative to the artifact root."""
    if fmt not in FORMATS:
        raise ValueError(f"quantized format {fmt!r} is not one of {FORMATS}")
    if Path(directory).is_absolute():
        raise ValueError(f"quantized model dir {directory!r} must be relative to the artifact")
    return {"dir": directory, "format": fmt, **details}


def quantized_exports(artifact: Any) -> list[QuantizedExport]:
    """Every quantized model listed in the artifact's metadata ``models``, in metadata order."""
    root = Path(artifact.path)
    models = (getattr(artifact, "metadata", None) or {}).get("models") or {}
    out = []
    label = f"{artifact.name}:v{artifact.version}" if hasattr(artifact, "name") else str(root)
    for config, entry in models.items():
        if not isinstance(entry, dict) or "dir" not in entry or entry.get("format") not in FORMATS:
            raise UserError(
                f"{label} metadata models.{config} needs 'dir' and 'format' (fp8|nvfp4)",
                hint="re-run the quantize stage",
            )
        details = {k: v for k, v in entry.items() if k not in ("dir", "format")}
        out.append(QuantizedExport(config, root / entry["dir"], entry["format"], details))
    return out
