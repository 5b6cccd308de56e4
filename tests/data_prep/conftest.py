"""Shared fixtures for the data-prep tests: shared test data, the independent megatron-core reader."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from nemotron.paths import REPO_ROOT

SHARED = Path(os.environ.get("NEMOTRON_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
GPT2_TIKTOKEN = SHARED / "tokenizers" / "gpt2" / "gpt2.tiktoken"
TEKKEN_JSON = SHARED / "tokenizers" / "tekken" / "tokenizer.json"
PROSE = SHARED / "pretrain" / "prose_small.jsonl"
FAQ = SHARED / "sft" / "faq_qa.jsonl"
GSM = SHARED / "rl" / "gsm_symbolic.jsonl"
TINY = REPO_ROOT / "recipes" / "super3" / "assets" / "tiny"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Tokenizer verdicts (tokenizer.py caches them under XDG_CACHE_HOME) stay inside the test run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


@pytest.fixture(scope="session")
def megatron_indexed() -> Any:
    """megatron-core's indexed_dataset module (the independent reader/builder)."""
    import torch

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def output_files(root: Path) -> dict[str, bytes]:
    """Every data file of an output directory (the lock and the finalizer marker are bookkeeping)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".finalized")
    }


def assert_same_tree(a: Path, b: Path) -> None:
    files_a, files_b = output_files(a), output_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, f"files differ: {different[:5]}"


def pretrain_cfg(inputs: Any, tokenizer: Path, **over: Any) -> dict[str, Any]:
    data = {"inputs": inputs, "valid_fraction": 0.0, "test_fraction": 0.0, "max_bad_fraction": 0.0}
    data.update(over.pop("data", {}))
    cfg = {"output": {"name": "test-pretrain-data"}, "data": data, "tokenizer": {"path": str(tokenizer)}, "workers": 1}
    cfg.update(over)
    return cfg
