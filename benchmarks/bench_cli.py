"""CLI latency benchmark: median wall time of the commands users type most.

Targets (docs/performance.md): ``uv run nemotron super3 --help`` (the README's spelling, run from the
repository root with the ``uv`` found on PATH, so uv's own start and environment check count)
<= 0.30 s median; ``nemotron super3 --help`` and ``nemotron super3 pretrain --help`` through the
installed entry point <= 0.25 s; ``nemotron super3 pretrain --dry-run`` <= 1.0 s (for a Slurm profile
the sbatch preview imports NeMo-Run, ~2 s, which is reported separately and excluded from the target).
The first (untimed) run of each command fills the bytecode cache (``nemotron.bytecode``).

    uv run python benchmarks/bench_cli.py [--runs 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = str(Path(sys.executable).parent / "nemotron")
REPO = Path(__file__).resolve().parents[1]
UV = "uv"  # as the user types it: a wrapper on PATH (e.g. a pyenv shim) is part of what they wait for
ENV_TOML = """
[cluster]
executor = "slurm"
account = "bench"
partition = "batch"
tunnel = "local"
"""

CASES = [
    ("uv run nemotron super3 --help", ["<uv>", "super3", "--help"], 0.30),
    ("nemotron super3 --help", ["super3", "--help"], 0.25),
    ("nemotron super3 pretrain --help", ["super3", "pretrain", "--help"], 0.25),
    ("nemotron super3 pretrain --dry-run", ["super3", "pretrain", "--dry-run"], 1.0),
    (
        "nemotron super3 pretrain --dry-run -r cluster (sbatch preview)",
        ["super3", "pretrain", "-d", "-r", "cluster"],
        None,
    ),
    ("python -c 'import nemo_run' (excluded import)", None, None),
]


def time_once(args: list[str] | None, env: dict[str, str]) -> float:
    if args is None:
        cmd = [sys.executable, "-c", "import nemo_run"]
    elif args[0] == "<uv>":
        cmd = [UV, "run", "nemotron", *args[1:]]
    else:
        cmd = [BIN, *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "env.toml"
        env_file.write_text(ENV_TOML)
        env = {**os.environ, "NEMOTRON_HOME": str(Path(tmp) / "home"), "NEMOTRON_ENV_FILE": str(env_file)}
        results = []
        if shutil.which(UV) is None:
            raise SystemExit("uv is not on PATH; the `uv run` case measures what README users type")
        print(f"uv: {shutil.which(UV)}; bytecode writing off: {bool(env.get('PYTHONDONTWRITEBYTECODE'))}")
        for label, args, target in CASES:
            time_once(args, env)  # warm the page cache and .pyc files
            samples = [time_once(args, env) for _ in range(opts.runs)]
            median = statistics.median(samples)
            verdict = "" if target is None else ("PASS" if median <= target else "FAIL")
            results.append(
                {
                    "command": label,
                    "median_s": round(median, 3),
                    "min_s": round(min(samples), 3),
                    "target_s": target,
                    "verdict": verdict,
                }
            )
            print(
                f"{label:<66} median {median:6.3f} s  min {min(samples):6.3f} s  "
                f"{'target ' + str(target) + ' s ' + verdict if target else ''}"
            )
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2))
    if any(r["verdict"] == "FAIL" for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
