"""Helpers for the node runner and the megatron (GPU) backend translation tests (``tests/recipes``
is a package so its conftest never shadows another directory's ``conftest`` module).

Configs come from the real config pipeline (configs/super3 merged and validated); data fixtures are
written in the real formats (Megatron bin/idx via megatron-core's builder, packed Parquet via
pyarrow, RL JSONL) so the translation reads what data prep produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nemotron.artifacts.model import Artifact
from nemotron.paths import RECIPES_DIR

if str(RECIPES_DIR) not in sys.path:
    sys.path.insert(0, str(RECIPES_DIR))

REFERENCE_DIR = RECIPES_DIR / "super3" / "megatron" / "api_reference"


def load_reference(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE_DIR / f"{name}.json").read_text())


def resolved_config(stage: str, config: str = "default", tmp: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """A stage config exactly as train.yaml holds it: merged, validated, plus a ``job:`` section."""
    from nemotron.config.loader import load_stage_config
    from nemotron.pipeline.stages import get_stage

    st = get_stage(stage)
    data = load_stage_config(st, config, cli_overrides=overrides or None).data
    base = tmp or Path("/tmp/nemotron-test")
    data["job"] = {
        "id": f"20261123-000000-{st.name.replace('.', '-')}-abc123",
        "experiment": "20261123-000000-abc123",
        "stage": st.name,
        "config_name": config,
        "config_hash": "0" * 64,
        "dir": str(base / "jobs" / st.name),
        "output_dir": str(base / "outputs" / st.name),
        "artifacts_root": str(base / "artifacts"),
        "git_rev": "unknown",
    }
    return data


def artifact(name: str, kind: str, path: Path, metadata: dict[str, Any] | None = None, version: int = 1) -> Artifact:
    return Artifact(name=name, version=version, kind=kind, path=str(path), metadata=dict(metadata or {}))


def write_indexed(prefix: Path, docs: list[list[int]]) -> None:
    """A real Megatron ``prefix.bin``/``prefix.idx`` pair written by megatron-core's builder."""
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
    for doc in docs:
        builder.add_document(torch.tensor(doc, dtype=torch.int64), [len(doc)])
    builder.finalize(str(prefix) + ".idx")


def write_packed_parquet(path: Path, rows: list[list[list[int]]]) -> None:
    """Each row packs several sequences: input_ids concatenated, seq_start_id their offsets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, masks, starts = [], [], []
    for seqs in rows:
        flat, offs = [], []
        for seq in seqs:
            offs.append(len(flat))
            flat.extend(seq)
        ids.append(flat)
        masks.append([1] * len(flat))
        starts.append(offs)
    table = pa.table(
        {
            "input_ids": pa.array(ids, type=pa.list_(pa.int32())),
            "loss_mask": pa.array(masks, type=pa.list_(pa.int8())),
            "seq_start_id": pa.array(starts, type=pa.list_(pa.int32())),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


SFT_ROWS = [[[1, 2, 3, 4], [5, 6, 7]], [[8, 9, 10, 11, 12, 13]], [[14, 15], [16, 17, 18], [19, 20]]]


def megatron_model(root: Path, iteration: int = 200, hf: bool = False, name: str = "pretrain-model") -> Artifact:
    """A model artifact as the megatron stages publish it: checkpoints/ (+ hf/)."""
    ckpt = root / "checkpoints"
    (ckpt / f"iter_{iteration:07d}").mkdir(parents=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text(str(iteration))
    meta: dict[str, Any] = {"format": "megatron", "megatron_checkpoint": "checkpoints", "iteration": iteration}
    if hf:
        (root / "hf").mkdir()
        (root / "hf" / "config.json").write_text("{}")
        meta["hf_dir"] = "hf"
    return artifact(name, "model", root, meta)


def hf_model(root: Path, name: str = "sft-model") -> Artifact:
    (root / "hf").mkdir(parents=True, exist_ok=True)
    (root / "hf" / "config.json").write_text("{}")
    return artifact(name, "model", root, {"format": "hf", "hf_dir": "hf"})


def _fields(ref: dict[str, Any], cls: str) -> dict[str, dict[str, Any]]:
    return ref["classes"][cls]["fields"]


def literal_values(ref: dict[str, Any], cls: str, field: str) -> list[str]:
    """The values a ``Literal[...]`` field accepts, as recorded from the pinned source."""
    import ast

    annotation = _fields(ref, cls)[field]["type"]
    node = ast.parse(annotation, mode="eval").body
    assert isinstance(node, ast.Subscript) and ast.unparse(node.value) == "Literal", annotation
    elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    return [e.value for e in elts]


def bridge_keys_problems(overrides: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Dotted ConfigContainer paths that the pinned Megatron-Bridge does not have.

    ``section.field`` must be a field of the class the recipe puts in that section (recorded at the
    pinned tag, with its megatron-core bases); a bare key must be a ConfigContainer field.
    """
    sections = ref["config_container"]
    top = _fields(ref, "ConfigContainer")
    problems = []
    for key in overrides:
        section, _, rest = key.partition(".")
        if not rest:
            known = section in top
        else:
            known = section in sections and rest.split(".")[0] in _fields(ref, sections[section])
        if not known:
            problems.append(key)
    return problems


def missing_caller_keys(recipe: str, overrides: dict[str, Any], ref: dict[str, Any], dataset: Any = None) -> list[str]:
    """Keys the pinned recipe leaves for its caller (``recipe_facts``) that the translation does not set."""
    needed = ref["recipe_facts"]["recipes"][recipe]["caller_must_set"]
    have = set(overrides) | ({"dataset"} if dataset is not None else set())
    return [key for key in needed if key not in have or (key in overrides and overrides[key] in (None, ""))]


def spec_problems(spec: tuple[str, dict[str, Any]], ref: dict[str, Any]) -> list[str]:
    """A ``(class, kwargs)`` spec against the pinned class: unknown keywords, and required fields
    (no default in the library) that the spec leaves out; nested specs are checked too."""
    name, kwargs = spec
    if name not in ref["classes"]:
        return [name]
    fields = _fields(ref, name)
    problems = [f"{name}.{k}" for k in kwargs if k not in fields]
    problems += [f"{name}.{k} (required)" for k, f in fields.items() if f["required"] and k not in kwargs]
    for value in kwargs.values():
        if isinstance(value, tuple):
            problems += spec_problems(value, ref)
    return problems


def signature_problems(function: str, kwargs: dict[str, Any], params: dict[str, str]) -> list[str]:
    """Keyword arguments against a signature ``{param: "required"|"optional"}``: unknown ones (unless
    the function takes ``**kwargs``) and required ones left out."""
    accepts_any = any(p.startswith("**") for p in params)
    problems = [] if accepts_any else [f"{function}({k}=)" for k in kwargs if k not in params]
    problems += [f"{function}: missing {p}" for p, kind in params.items() if kind == "required" and p not in kwargs]
    return problems


def installed_params(func: Any) -> dict[str, str]:
    """``{param: required|optional}`` of an installed callable (``inspect.signature``)."""
    import inspect

    out = {}
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            out["**" + p.name] = "optional"
        elif p.kind is not p.VAR_POSITIONAL:
            out[p.name] = "required" if p.default is p.empty else "optional"
    return out


def call_problems(call: Any, bridge: dict[str, Any]) -> list[str]:
    """One ``LibraryCall`` against the pinned signature: Megatron-Bridge functions from the recorded
    source, ModelOpt functions from the installed ModelOpt, provider fields from the provider class."""
    if call.function == "provider.<set>":
        fields = _fields(bridge, "MambaModelProvider")
        return [f"provider.{k}" for k in call.kwargs if k not in fields]
    if call.function in bridge["functions"]:
        return signature_problems(call.function, call.kwargs, bridge["functions"][call.function]["params"])
    if call.function.startswith("modelopt."):
        import importlib

        module, _, name = call.function.rpartition(".")
        return signature_problems(
            call.function, call.kwargs, installed_params(getattr(importlib.import_module(module), name))
        )
    return [f"{call.function} (not a recorded library function)"]


def tree_problems(config: Any, ref: Any, path: str = "") -> list[str]:
    """Keys of a nested config dict missing from a recorded key tree (``true`` = free-form leaf)."""
    if ref is True or not isinstance(config, dict):
        return []
    problems = []
    for key, value in config.items():
        where = f"{path}.{key}" if path else key
        if key not in ref:
            problems.append(where)
        else:
            problems += tree_problems(value, ref[key], where)
    return problems
