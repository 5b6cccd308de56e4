"""Benchmark ``data prep pretrain``: throughput (tokens/s) and peak memory on this machine.

    .venv/bin/python benchmarks/bench_data_prep.py --size-mb 500 --workers 2 [--baseline-mb 50]

Builds a synthetic JSONL corpus of ``--size-mb`` from real English text (documents of 1-8 KB cut
at line boundaries, each with a unique header), tokenizes it with a tiktoken BPE (GPT-2 ranks and
regex) through ``prepare_pretrain``, and reports wall-clock tokens/s (planning and finalization
included) and the peak RSS of the main process and of the largest worker. ``--baseline-mb`` also
times a faithful re-creation of Megatron-LM's preprocess_data.py (a ``multiprocessing.Pool`` that
json-decodes and tokenizes line by line, ``imap`` chunksize 32, megatron-core's
``IndexedDatasetBuilder.add_document`` in the parent) on the first N MB for comparison.
Results go to stdout and, with ``--json``, to a file. Numbers are documented in docs/data_prep.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_TOKENIZER = SHARED / "tokenizers" / "gpt2" / "gpt2.tiktoken"
SOURCES = [SHARED / "pretrain" / "prose_small.jsonl", REPO / "recipes" / "super3" / "assets" / "tiny" / "corpus.jsonl"]


def make_corpus(path: Path, size_mb: float, seed: int = 0) -> tuple[int, int]:
    """Write ~size_mb of JSONL documents; returns (documents, bytes)."""
    source = next(p for p in SOURCES if p.exists())
    lines: list[str] = []
    for row in source.read_text().splitlines():
        lines.extend(json.loads(row)["text"].splitlines(keepends=True))
    rng = random.Random(seed)
    target = int(size_mb * (1 << 20))
    written = docs = 0
    pos = 0
    with open(path, "w") as fh:
        while written < target:
            want = int(rng.lognormvariate(8.0, 0.6))  # median ~3 KB, most 1-8 KB
            parts, n = [f"Document {docs} (seed {seed}).\n"], 0
            while n < want:
                line = lines[pos % len(lines)]
                parts.append(line)
                n += len(line)
                pos += 1
            row = json.dumps({"text": "".join(parts)}) + "\n"
            fh.write(row)
            written += len(row.encode())
            docs += 1
    return docs, written


def cpu_seconds() -> tuple[float, float]:
    """User + system CPU time of (this process, its waited-for children = the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def cpu_stats(tokens: int, wall: float, before: tuple[float, float], cores: int) -> dict:
    """Wall and CPU figures, plus the throughput on ``cores`` idle cores this CPU time implies.

    The projection is a lower bound on wall time: no faster than the serial parent process, and no
    faster than all CPU work spread over ``cores``. It makes runs comparable on a shared machine.
    """
    me, kids = cpu_seconds()
    parent, children = me - before[0], kids - before[1]
    total = parent + children
    return {
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall),
        "cpu_s_parent": round(parent, 2),
        "cpu_s_workers": round(children, 2),
        "tokens_per_cpu_s": round(tokens / total),
        f"projected_tokens_per_s_{cores}_idle_cores": round(tokens / max(parent, total / cores)),
    }


def peak_rss_mb() -> tuple[float, float]:
    """(this process, largest waited-for child) peak resident set in MiB."""
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def run_ours(corpus: Path, tokenizer: Path, out: Path, workers: int, shard_mb: float) -> dict:
    from nemotron.data_prep.pretrain import prepare_pretrain

    cfg = {
        "output": {"name": "bench"},
        "data": {"inputs": [str(corpus)], "shard_size_mb": shard_mb, "valid_fraction": 0.001, "test_fraction": 0.0},
        "tokenizer": {"path": str(tokenizer)},
        "workers": workers,
    }
    start, before = time.perf_counter(), cpu_seconds()
    result = prepare_pretrain(cfg, out, progress=sys.stderr.isatty())
    stats = cpu_stats(result["num_tokens"], time.perf_counter() - start, before, workers)
    me, kids = peak_rss_mb()
    return {
        "docs": result["num_docs"],
        "shards": result["num_shards"],
        **stats,
        "peak_rss_main_mb": round(me),
        "peak_rss_worker_mb": round(kids),
    }


_ENC = None


def _baseline_init(tokenizer: str) -> None:
    global _ENC
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from nemotron.data_prep.tokenizer import GPT2_PATTERN

    ranks = load_tiktoken_bpe(tokenizer)
    _ENC = tiktoken.Encoding(
        "gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": len(ranks)}
    )


def _baseline_encode(line: str) -> tuple[list[int], int]:
    """preprocess_data.py's Encoder.encode: json.loads, tokenize, append EOD."""
    text = json.loads(line)["text"]
    ids = _ENC.encode_ordinary(text)  # type: ignore[union-attr]
    ids.append(_ENC.eot_token)  # type: ignore[union-attr]
    return ids, len(line)


def run_baseline(corpus: Path, tokenizer: Path, out: Path, workers: int, limit_mb: float) -> dict:
    import multiprocessing as mp
    import warnings

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    subset = out / "subset.jsonl"
    with open(corpus) as src, open(subset, "w") as dst:
        n = 0
        for line in src:
            dst.write(line)
            n += len(line)
            if n >= limit_mb * (1 << 20):
                break
    start, before = time.perf_counter(), cpu_seconds()
    builder = IndexedDatasetBuilder(str(out / "baseline.bin"), dtype=np.uint16)
    tokens = 0
    with (
        mp.get_context("fork").Pool(workers, initializer=_baseline_init, initargs=(str(tokenizer),)) as pool,
        open(subset) as fh,
    ):
        for ids, _ in pool.imap(_baseline_encode, fh, 32):
            builder.add_document(ids, [len(ids)])
            tokens += len(ids)
    builder.finalize(str(out / "baseline.idx"))
    return cpu_stats(tokens, time.perf_counter() - start, before, workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-mb", type=float, default=64)
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER)
    parser.add_argument("--baseline-mb", type=float, default=0, help="also time the preprocess_data.py re-creation")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs/outputs here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_data_prep_"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"corpus_{args.size_mb:g}mb.jsonl"
    if not corpus.exists():
        docs, nbytes = make_corpus(corpus, args.size_mb)
        print(f"corpus: {docs} docs, {nbytes / 2**20:.0f} MiB -> {corpus}", file=sys.stderr)
    report = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "loadavg_before": os.getloadavg()[0]},
        "corpus_mb": round(corpus.stat().st_size / 2**20, 1),
        "tokenizer": str(args.tokenizer),
        "workers": args.workers,
    }
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    report["ours"] = run_ours(corpus, args.tokenizer, out, args.workers, args.shard_mb)
    if args.baseline_mb:
        base = work / "baseline"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        report["baseline_preprocess_data"] = run_baseline(corpus, args.tokenizer, base, args.workers, args.baseline_mb)
        ours, theirs = report["ours"], report["baseline_preprocess_data"]
        report["speedup_wall"] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2)
        key = f"projected_tokens_per_s_{args.workers}_idle_cores"
        report["speedup_projected"] = round(ours[key] / theirs[key], 2)
    report["machine"]["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
