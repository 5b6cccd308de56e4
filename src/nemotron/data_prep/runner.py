"""The sharded, resumable executor shared by the pretrain, SFT and RL stages.

How a run goes:
1. Every task (Slurm rank) writes the same ``plan.json`` and takes the shards ``i % world == rank``.
2. Shards with a valid receipt (``receipts/<key>.json`` whose outputs exist with the recorded sizes)
   are skipped; the rest run on ``workers`` local processes. A shard writes its outputs atomically,
   then its receipt (also atomically): the receipt is the commit point, so a ``kill -9`` at any
   moment costs at most the shards in flight.
3. A task that sees every receipt present finalizes under an exclusive file lock: it checks the
   bad-row fraction, lets the stage write its index files (blend.json, ...) and writes
   ``manifest.json`` last. Finalization is a pure function of the receipts, so a resumed run is
   byte-identical to an uninterrupted one. With several tasks, whichever finishes last finalizes
   (each writes its receipts before looking), so no barrier is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing as mp
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import remove_stale_tmp, write_bytes_atomic, write_json_atomic
from nemotron.data_prep.plan import Plan, Shard, build_plan
from nemotron.data_prep.progress import Progress
from nemotron.data_prep.sources import BadRows, ChunkReader, expand_inputs
from nemotron.data_prep.tokenizer import TokenizerSpec, limit_threads_in_worker
from nemotron.errors import UserError

RECEIPTS = "receipts"
SHARDS = "shards"
MANIFEST = "manifest.json"
PLAN_FILE = "plan.json"  # written by Plan.write
LOCK = ".lock"
FINALIZED_MARK = ".finalized"  # which run finalized (decides who publishes); not part of the data


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs to process any shard of this run (picklable for spawned workers)."""

    stage: str
    output_dir: str
    settings: dict[str, Any]
    tokenizer: TokenizerSpec | None = None
    max_bad_fraction: float = 1.0  # for the per-shard fail-fast only; not part of the plan


class Counters:
    """Progress counters shared with worker processes: input bytes, documents, tokens."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.hook: Callable[[], None] | None = None

    def add(self, nbytes: int, docs: int, tokens: int) -> None:
        with self.array.get_lock():
            self.array[0] += nbytes
            self.array[1] += docs
            self.array[2] += tokens
        if self.hook is not None:
            self.hook()

    def snapshot(self) -> tuple[int, int, int]:
        with self.array.get_lock():
            return int(self.array[0]), int(self.array[1]), int(self.array[2])


ShardFn = Callable[[ShardJob, Shard, Counters], dict[str, Any]]


def available_cpus() -> int:
    """CPUs this process may run on (respects Slurm's cpus-per-task binding)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def slurm_rank_world() -> tuple[int, int]:
    return int(os.environ.get("SLURM_PROCID", "0")), int(os.environ.get("SLURM_NTASKS", "1"))


def run_token() -> str:
    """Identifies one run across its tasks: the Slurm job step, else this process."""
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_STEP_ID', '0')}"
    return f"local-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


# ---------------------------------------------------------------- receipts


def receipt_path(output_dir: Path, key: str) -> Path:
    return output_dir / RECEIPTS / f"{key}.json"


def load_receipt(output_dir: Path, shard: Shard) -> dict[str, Any] | None:
    """The shard's receipt if it is complete and its outputs are all present with the recorded sizes."""
    path = receipt_path(output_dir, shard.key)
    try:
        receipt = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if receipt.get("shard") != shard.key:
        return None
    for rel, info in receipt.get("outputs", {}).items():
        try:
            if (output_dir / rel).stat().st_size != info["size"]:
                return None
        except OSError:
            return None
    return receipt


def output_hashes(receipts: list[dict[str, Any]]) -> dict[str, str]:
    """``{relative path: sha256}`` of every shard output, for the manifest's ``files``."""
    return {rel: info["sha256"] for r in receipts for rel, info in sorted(r["outputs"].items())}


def _execute(fn: ShardFn, job: ShardJob, shard: Shard, counters: Counters) -> dict[str, Any]:
    out = Path(job.output_dir)
    result = fn(job, shard, counters)
    receipt = {"shard": shard.key, "piece": shard.piece.describe(), **result}
    write_json_atomic(receipt_path(out, shard.key), receipt)
    return receipt


# ---------------------------------------------------------------- worker processes

_WORKER_COUNTERS: Counters | None = None


def _worker_init(array: Any) -> None:
    global _WORKER_COUNTERS
    limit_threads_in_worker()
    _WORKER_COUNTERS = Counters(array)


def _worker_run(args: tuple[ShardFn, ShardJob, Shard]) -> tuple[str, Any, Any]:
    fn, job, shard = args
    assert _WORKER_COUNTERS is not None
    try:
        _execute(fn, job, shard, _WORKER_COUNTERS)
    except UserError as err:  # UserError's hint does not survive pickling; send the parts
        return ("user_error", err.message, err.hint)
    return ("ok", shard.key, None)


# ---------------------------------------------------------------- running a plan


@dataclass
class RunReport:
    rank: int
    world_size: int
    total: int
    mine: int
    reused: int
    ran: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    docs: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "shards_total": self.total,
            "shards_mine": self.mine,
            "shards_reused": self.reused,
            "shards_run": len(self.ran),
            "elapsed_s": round(self.elapsed_s, 3),
            "docs": self.docs,
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,
            "docs_per_s": round(self.docs / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,  # SFT: conversations
        }


def refuse_other_plan(out: Path, plan: Plan) -> None:
    """A non-empty output directory may only be resumed by the same plan, never overwritten by another.

    Its files may already be a published artifact (or the half of one a crashed run left): writing a
    different plan's shards and manifest there would silently change that data.
    """
    for record in (PLAN_FILE, MANIFEST):
        try:
            previous = json.loads((out / record).read_text()).get("plan_hash")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, AttributeError):
            previous = "unreadable"
        if previous != plan.hash:
            raise UserError(
                f"output_dir {out} holds data prep output of another plan ({record} plan_hash "
                f"{str(previous)[:12]}, this run {plan.hash[:12]})",
                hint="choose an empty output_dir (or leave it unset: each job gets its own)",
            )


def run_plan(
    plan: Plan,
    job: ShardJob,
    fn: ShardFn,
    *,
    workers: int,
    rank: int,
    world_size: int,
    progress: bool,
    title: str,
) -> RunReport:
    """Run this rank's unfinished shards of ``plan`` on ``workers`` processes (0 = all CPUs)."""
    out = Path(job.output_dir)
    refuse_other_plan(out, plan)
    (out / RECEIPTS).mkdir(parents=True, exist_ok=True)
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    plan.write(out)
    mine = [s for s in plan.shards if s.index % world_size == rank]
    pending = [s for s in mine if load_receipt(out, s) is None]
    report = RunReport(rank, world_size, len(plan.shards), len(mine), len(mine) - len(pending))
    start = time.monotonic()
    array = mp.get_context("spawn").Array("q", 3)
    counters = Counters(array)
    bar = Progress(title, sum(s.piece.bytes for s in pending), len(pending), enabled=progress)

    def refresh() -> None:
        bar.update(*counters.snapshot(), len(report.ran))

    try:
        n = min(workers or available_cpus(), len(pending))
        if n <= 1:
            last = [0.0]

            def hook() -> None:
                now = time.monotonic()
                if now - last[0] >= 0.25:
                    last[0] = now
                    refresh()

            counters.hook = hook
            for shard in pending:
                _execute(fn, job, shard, counters)
                report.ran.append(shard.key)
                refresh()
        else:
            _run_pool(fn, job, pending, n, array, report, refresh)
    finally:
        refresh()
        bar.close()
    report.elapsed_s = time.monotonic() - start
    _, report.docs, report.tokens = counters.snapshot()
    return report


def run_stage(
    stage: str,
    cfg: Any,
    out: Path,
    settings: dict[str, Any],
    fn: ShardFn,
    finalize_fn: Callable[[Plan, list[dict[str, Any]], Path], dict[str, Any]],
    *,
    tokenizer: TokenizerSpec | None = None,
    rank: int | None,
    world_size: int | None,
    progress: bool,
) -> dict[str, Any]:
    """The whole run of a stage once it has its settings: plan, shards, then finalization if all done.

    One entry for pretrain, SFT and RL so they plan, resolve ranks, run and report identically.
    ``cfg`` is the stage's validated config (``data.inputs``/``shard_size_mb``/``max_bad_fraction``
    and ``workers`` are common to all three); ``settings`` go into the plan hash. Workers also get
    ``dataset_names`` (index -> name), which is not part of the plan. ``rank``/``world_size``
    default to SLURM_PROCID/SLURM_NTASKS. Returns the manifest (or just ``plan_hash``/``stage``
    while other ranks still work) plus ``finalized``, ``publish``, ``output_dir`` and ``run``.
    """
    env_rank, env_world = slurm_rank_world()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    datasets = expand_inputs(cfg.data.inputs)
    plan = build_plan(stage, datasets, settings, cfg.data.shard_size_mb)
    worker_settings = settings | {"dataset_names": [ds.name for ds in datasets]}
    job = ShardJob(stage, str(out), worker_settings, tokenizer, cfg.data.max_bad_fraction)
    if progress and tokenizer is not None:
        print(f"data prep {stage}: {encoder_line(tokenizer)}", file=sys.stderr, flush=True)
    report = run_plan(
        plan, job, fn, workers=cfg.workers, rank=rank, world_size=world_size,
        progress=progress, title=f"data prep {stage}",
    )  # fmt: skip
    manifest, publish = finalize(plan, out, finalize_fn, max_bad_fraction=job.max_bad_fraction, rank=rank)
    result: dict[str, Any] = dict(manifest or {"plan_hash": plan.hash, "stage": stage})
    result.update(finalized=manifest is not None, publish=publish, output_dir=str(out), run=report.to_dict())
    return result


def _run_pool(
    fn: ShardFn,
    job: ShardJob,
    pending: list[Shard],
    n: int,
    array: Any,
    report: RunReport,
    refresh: Callable[[], None],
) -> None:
    ctx = mp.get_context("spawn")  # no fork: the parent may hold threads (progress bar, tokenizers)
    pool = ctx.Pool(n, initializer=_worker_init, initargs=(array,))
    try:
        results = pool.imap_unordered(_worker_run, [(fn, job, s) for s in pending], chunksize=1)
        while True:
            try:
                status, a, b = results.next(timeout=0.25)
            except mp.TimeoutError:
                refresh()
                continue
            except StopIteration:
                break
            if status == "user_error":
                raise UserError(a, hint=b)
            report.ran.append(a)
            refresh()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


# ---------------------------------------------------------------- finalization


@contextlib.contextmanager
def _locked(output_dir: Path) -> Iterator[None]:
    with open(output_dir / LOCK, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def check_bad_rows(receipts: list[dict[str, Any]], max_bad_fraction: float) -> dict[str, Any]:
    """Sum bad rows over all shards; raise UserError when they exceed ``max_bad_fraction`` of rows."""
    rows = sum(r["stats"]["rows"] for r in receipts)
    by_reason: dict[str, int] = {}
    examples: list[str] = []
    for r in receipts:
        bad = r["stats"]["bad_rows"]
        for reason, count in bad["by_reason"].items():
            by_reason[reason] = by_reason.get(reason, 0) + count
        examples.extend(bad["examples"][: max(0, 3 - len(examples))])
    total_bad = sum(by_reason.values())
    if rows == 0:
        raise UserError("the inputs contain no rows", hint="check data.inputs")
    fraction = total_bad / rows
    summary = {
        "total": total_bad,
        "rows": rows,
        "fraction": round(fraction, 6),
        "by_reason": dict(sorted(by_reason.items())),
    }
    if fraction > max_bad_fraction or total_bad == rows:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(by_reason.items()))
        raise UserError(
            f"{total_bad} of {rows} input rows ({fraction:.2%}) were bad, above data.max_bad_fraction="
            f"{max_bad_fraction} ({reasons}; e.g. {examples[0] if examples else '-'})",
            hint="fix the inputs or the field names (data.*_field), or raise data.max_bad_fraction",
        )
    return summary


def fail_fast_if_all_bad(stats: dict[str, Any], max_bad_fraction: float, what: str) -> None:
    """A shard whose every row is bad means a wrong field name or format: stop now, not at the end."""
    bad = stats["bad_rows"]
    if max_bad_fraction < 1 and stats["rows"] >= 10 and bad["total"] == stats["rows"]:
        reasons = ", ".join(f"{k}={v}" for k, v in bad["by_reason"].items())
        raise UserError(
            f"every one of {stats['rows']} rows of {what} was bad ({reasons}; e.g. {bad['examples'][0]})",
            hint="check the input format and data.*_field names",
        )


def shard_result(
    job: ShardJob,
    shard: Shard,
    outputs: dict[str, Any],
    reader: ChunkReader,
    bad: BadRows,
    splits: dict[str, Any],
    *,
    docs: int,
    tokens: int,
    **extra: Any,
) -> dict[str, Any]:
    """The receipt body every stage's shard function returns, after the all-bad fail-fast.

    One builder so the ``stats`` keys that ``check_bad_rows``/``RunReport`` read stay the same for
    all stages; ``extra`` holds stage-specific counters (e.g. SFT's truncated/dropped counts).
    """
    stats = {"rows": reader.rows, "bad_rows": bad.to_dict(), "docs": docs, "tokens": tokens, "splits": splits, **extra}
    fail_fast_if_all_bad(stats, job.max_bad_fraction, shard.piece.file.path)
    result: dict[str, Any] = {"outputs": outputs, "stats": stats}
    if job.tokenizer is not None:  # which encoder made this shard's ids (same ids either way)
        result["encoder"] = {"name": job.tokenizer.encoder, "note": job.tokenizer.encoder_note}
    return result


def encoder_line(spec: TokenizerSpec) -> str:
    """Which encoder makes the ids, for the job log (the manifest and receipts record it too)."""
    what = {
        "rank-table": "tiktoken rank table (checked equal to HF tokenizers)",
        "hf": f"HF tokenizers (fast path refused: {spec.encoder_note})" if spec.encoder_note else "HF tokenizers",
        "tiktoken": "tiktoken rank file",
    }.get(spec.encoder, spec.encoder or "undecided")
    return f"tokenizer {spec.path}: {what}"


def encoder_summary(receipts: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's record of the encoder(s) the shards were made with (several after a resume
    across versions that decided differently)."""
    seen = {json.dumps(r["encoder"], sort_keys=True) for r in receipts if "encoder" in r}
    found = [json.loads(e) for e in sorted(seen)]
    if not found:
        return {}
    if len(found) == 1:
        return {"encoder": found[0]["name"], **({"encoder_note": found[0]["note"]} if found[0]["note"] else {})}
    return {"encoder": [e["name"] for e in found], "encoder_note": [e["note"] for e in found]}


def finalize(
    plan: Plan,
    output_dir: Path,
    finalize_fn: Callable[[Plan, list[dict[str, Any]], Path], dict[str, Any]],
    *,
    max_bad_fraction: float,
    rank: int,
) -> tuple[dict[str, Any] | None, bool]:
    """If every shard is done, write the stage's index files and manifest.json.

    Returns ``(manifest, publish)``: manifest is None while other ranks still have shards to do;
    ``publish`` is True for exactly one process per run (the one that finalized, or rank 0 when the
    output was already complete before this run).
    """
    receipts = [load_receipt(output_dir, s) for s in plan.shards]
    if any(r is None for r in receipts):
        return None, False
    with _locked(output_dir):
        receipts = [load_receipt(output_dir, s) for s in plan.shards]
        if any(r is None for r in receipts):  # pragma: no cover - a concurrent cleanup
            return None, False
        bad = check_bad_rows(receipts, max_bad_fraction)  # type: ignore[arg-type]
        token = run_token()
        existing = _read_manifest(output_dir)
        marker = output_dir / FINALIZED_MARK
        if existing is not None and existing.get("plan_hash") == plan.hash:
            previous = marker.read_text().strip() if marker.exists() else ""
            return existing, (previous != token and rank == 0)
        body = finalize_fn(plan, receipts, output_dir)  # type: ignore[arg-type]
        if isinstance(body.get("tokenizer"), dict):
            body["tokenizer"] = body["tokenizer"] | encoder_summary(receipts)  # type: ignore[arg-type]
        manifest = {
            "plan_hash": plan.hash,
            "stage": plan.stage,
            "num_shards": len(plan.shards),
            "datasets": [
                {"name": d.name, "weight": d.weight, "pattern": d.pattern, "files": [f.path for f in d.files]}
                for d in plan.datasets
            ],
            "bad_rows": bad,
            **body,
        }
        write_json_atomic(output_dir / MANIFEST, manifest)
        write_bytes_atomic(marker, token.encode())
        _cleanup_stale(plan, output_dir)
        return json.loads((output_dir / MANIFEST).read_text()), True


def _read_manifest(output_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((output_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _cleanup_stale(plan: Plan, output_dir: Path) -> None:
    """Drop receipts and shard outputs from older plans, and temp files of killed writers."""
    keys = {s.key for s in plan.shards}
    for receipt in (output_dir / RECEIPTS).glob("*.json"):
        if receipt.stem not in keys:
            receipt.unlink(missing_ok=True)
    for shard_dir in (output_dir / SHARDS).iterdir():
        if shard_dir.name not in keys:
            if shard_dir.is_dir():
                shutil.rmtree(shard_dir, ignore_errors=True)
            else:
                shard_dir.unlink(missing_ok=True)
    remove_stale_tmp(output_dir)


def prepare_output_dir(output_dir: str | os.PathLike[str] | None) -> Path:
    """The absolute output directory (relative paths are relative to the cwd), created if missing."""
    if output_dir is None or str(output_dir) == "":
        raise UserError("no output directory", hint="set output_dir=... (the CLI sets job.output_dir)")
    path = Path(os.path.expanduser(str(output_dir))).absolute()
    if path.exists() and not path.is_dir():
        raise UserError(f"output_dir {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path
