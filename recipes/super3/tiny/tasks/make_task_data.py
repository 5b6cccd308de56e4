"""Regenerate the data of the tiny lm-eval tasks (deterministic; run from anywhere).

    python recipes/super3/tiny/tasks/make_task_data.py

Writes, next to this script under ``data/``:
- ``tiny_addition.jsonl``: all 100 single-digit sums ``{"a", "b", "answer"}`` in a fixed shuffled
  order (so ``eval.limit`` takes a mix of sums, not just ``0 + b``). The prompt is the pipeline's
  chat phrasing ``What is A + B?`` (SFT/RL data use the same), rendered by the task YAML.
- ``tiny_prose_eval.jsonl``: the held-out prose slice scored by ``tiny_prose_ppl`` (``{"text"}``).
- ``tiny_prose_calib.jsonl``: the remaining prose paragraphs; the quantize stage calibrates on them
  when it gets no ``calib`` (SFT data) input, so evaluation never scores calibration text.

Prose source: docstrings of Python standard-library modules (Python Software Foundation License),
i.e. text every Python install carries, so no download and no external data set is needed. The
committed files were made with CPython 3.11; other versions may word a docstring differently, which is
why the JSONL files are committed rather than generated at run time.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pathlib
import random
import re

DATA = pathlib.Path(__file__).resolve().parent / "data"
ADDITION_SEED = 20251123
EVAL_EVERY = 4  # every 4th prose paragraph is held out for evaluation
EVAL_PARAGRAPHS = 40

# Stdlib modules whose docstrings are plain English prose.
PROSE_MODULES = [
    "textwrap",
    "heapq",
    "bisect",
    "functools",
    "string",
    "fractions",
    "statistics",
    "calendar",
    "difflib",
    "shlex",
    "pprint",
    "queue",
    "sched",
    "tempfile",
    "fnmatch",
    "glob",
    "shutil",
    "contextlib",
    "dataclasses",
    "enum",
    "abc",
    "copy",
    "weakref",
    "secrets",
    "hmac",
    "base64",
    "locale",
    "gettext",
    "argparse",
    "logging",
    "zipfile",
    "tarfile",
    "csv",
    "configparser",
    "ipaddress",
    "uuid",
    "graphlib",
    "operator",
    "itertools",
]


def addition_rows() -> list[dict[str, object]]:
    rows = [{"a": a, "b": b, "answer": str(a + b)} for a in range(10) for b in range(10)]
    random.Random(ADDITION_SEED).shuffle(rows)
    return rows


def _is_prose(text: str) -> bool:
    """Sentences of ordinary English: no doctest, markup or code punctuation."""
    return (
        100 <= len(text) <= 400
        and ">>>" not in text
        and not re.search(r"[{}\[\]=|#*`]", text)
        and text[0].isupper()
        and text.endswith(".")
    )


def prose_paragraphs() -> list[str]:
    """Docstring paragraphs of PROSE_MODULES (module doc, then public functions/classes by name)."""
    seen: set[str] = set()
    out: list[str] = []
    for name in PROSE_MODULES:
        mod = importlib.import_module(name)
        docs = [mod.__doc__ or ""]
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for para in re.split(r"\n\s*\n", doc):
                text = " ".join(para.split())
                if _is_prose(text) and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out


def _write_jsonl(path: pathlib.Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def main() -> None:
    paragraphs = prose_paragraphs()
    held_out = [p for i, p in enumerate(paragraphs) if i % EVAL_EVERY == 0][:EVAL_PARAGRAPHS]
    calib = [p for p in paragraphs if p not in set(held_out)]
    _write_jsonl(DATA / "tiny_addition.jsonl", addition_rows())
    _write_jsonl(DATA / "tiny_prose_eval.jsonl", [{"text": t} for t in held_out])
    _write_jsonl(DATA / "tiny_prose_calib.jsonl", [{"text": t} for t in calib])
    print(f"wrote 100 addition rows, {len(held_out)} eval and {len(calib)} calibration paragraphs to {DATA}")


if __name__ == "__main__":
    main()
