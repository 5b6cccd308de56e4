"""Dataset loaders for the tiny lm-eval tasks (referenced from the task YAMLs via ``!function``).

Why a loader instead of ``dataset_path: json`` + ``data_files``: relative ``data_files`` resolve
against the process's working directory, not the YAML, so the task would break when the node runs
elsewhere. These functions read the committed JSONL next to this file and never touch the network.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

DATA = pathlib.Path(__file__).resolve().parent / "data"


def _rows(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _as_test_split(rows: list[dict[str, Any]]):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_addition(**_: Any):
    """``What is A + B?`` rows: ``{"a", "b", "answer"}`` (100 single-digit sums)."""
    return _as_test_split(_rows("tiny_addition.jsonl"))


def load_prose(**_: Any):
    """The held-out prose paragraphs: ``{"text"}``."""
    return _as_test_split(_rows("tiny_prose_eval.jsonl"))
