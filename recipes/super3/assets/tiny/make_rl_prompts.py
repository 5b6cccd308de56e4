"""Generate ``rl_prompts.jsonl``: the tiny RL stage's verifiable single-digit addition prompts.

Why a generator: the file is committed (``data prep rl`` reads it without network or shared data), and
this script is the one place that says how it was made, so ``python make_rl_prompts.py --check``
proves the committed file was not edited by hand. Output is deterministic: all 100 ordered pairs
``A, B`` in ``0..9``, phrased exactly like the SFT chats (``What is A + B?`` -> ``C``) so the RL stage
sharpens a skill the SFT model already has instead of asking for a new format.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "rl_prompts.jsonl"


def records() -> list[dict[str, str]]:
    """All 100 single-digit addition problems, ordered by (A, B)."""
    return [{"prompt": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(10) for b in range(10)]


def render(rows: list[dict[str, str]]) -> str:
    """The JSONL text for ``rows`` (one compact object per line, keys in a fixed order)."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file + rename so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generator")
    args = parser.parse_args(argv)
    text = render(records())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date: run {pathlib.Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
