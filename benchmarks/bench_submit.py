"""Orchestration overhead: from `nemotron super3 pipe -c tiny --batch PROFILE` starting to all jobs submitted.

Runs the real CLI against the real (local) Slurm cluster, each time with a fresh NEMOTRON_HOME so no
stage is skipped and all 8 tiny stages are submitted (sbatch with afterok dependencies). `--batch`
returns right after the last sbatch, so the wall time of the process is the orchestration overhead:
config resolution + job dirs + NeMo-Run import + NeMo-Run's sbatch round trips, without the jobs' own
work. The submitted jobs are cancelled right away.

Two cases:
  cold  Python as configured here (PYTHONDONTWRITEBYTECODE=1 on this machine: every import compiles
        from source, since the venv has no bytecode cache) — the worst case.
  warm  bytecode cache enabled (PYTHONPYCACHEPREFIX in a temp dir, one untimed warm-up run) — what a
        user with a normal install sees from the second command on.

    .venv/bin/python benchmarks/bench_submit.py [--runs 3] [--json out.json]

Needs a running Slurm (../shared/tools/local-slurm.sh start). Target: <= 5 s (warm). Besides wall time it
reports the CPU time of the command and its sbatch calls: on a shared, loaded machine wall time mostly
measures the other processes; CPU time is what the command itself costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEMOTRON = str(Path(sys.executable).parent / "nemotron")
TARGET_S = 5.0
ENV_TOML = """
[bench]
executor = "slurm"
tunnel = "local"
partition = "{partition}"
time = "00:10:00"
container_image = ""
"""


def default_partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True).stdout.split()
    return next((p.rstrip("*") for p in out if p.endswith("*")), out[0].rstrip("*"))


def one_run(base: Path, env: dict[str, str], label: str) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
    run_env = {**env, "NEMOTRON_HOME": str(home)}
    run_env.pop("NEMORUN_HOME", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [NEMOTRON, "super3", "pipe", "-c", "tiny", "--batch", "bench"],
        capture_output=True,
        text=True,
        env=run_env,
        cwd=REPO,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # CLI + its sbatch calls
    if proc.returncode != 0:
        raise SystemExit(f"pipe failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    submitted = re.findall(r"slurm job (\d+)", proc.stdout)
    prepared = re.search(r"prepared in ([\d.]+)s", proc.stdout)
    exp = re.search(r"Submitted experiment (\S+)", proc.stdout)
    if exp:  # do not let the tiny jobs compete with the next measurement
        subprocess.run([NEMOTRON, "cancel", exp.group(1)], capture_output=True, env=run_env, timeout=120)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "jobs": len(submitted),
        "prepare_s": float(prepared.group(1)) if prepared else None,
    }


def import_time(env: dict[str, str]) -> float:
    code = "import time; t=time.perf_counter(); from nemotron.execution.nemorun import nemo_run; nemo_run(); print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def measure(label: str, env: dict[str, str], runs: int, base: Path, warmup: bool) -> dict:
    if warmup:
        one_run(base, env, f"{label}-warmup")
    results = [one_run(base, env, label) for _ in range(runs)]
    walls = [r["wall_s"] for r in results]
    return {
        "case": label,
        "runs": runs,
        "jobs_submitted": [r["jobs"] for r in results],
        "wall_s": walls,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "cpu_median_s": statistics.median(r["cpu_s"] for r in results),
        "prepare_median_s": statistics.median(r["prepare_s"] for r in results if r["prepare_s"] is not None),
        "nemo_run_import_s": import_time(env),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cases", default="cold,warm")
    args = parser.parse_args()
    if shutil.which("sbatch") is None:
        raise SystemExit("no Slurm here: start it with ../shared/tools/local-slurm.sh start")

    base = Path(tempfile.mkdtemp(prefix="nemotron-bench-submit-"))
    env_file = base / "env.toml"
    env_file.write_text(ENV_TOML.format(partition=default_partition()))
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(env_file)}
    report = {"load_avg_before": os.getloadavg(), "cpus": os.cpu_count(), "target_s": TARGET_S, "cases": []}
    try:
        for case in args.cases.split(","):
            if case == "cold":
                report["cases"].append(measure("cold", env, args.runs, base, warmup=False))
            elif case == "warm":
                warm_env = {**env, "PYTHONPYCACHEPREFIX": str(base / "pycache")}
                warm_env.pop("PYTHONDONTWRITEBYTECODE", None)
                report["cases"].append(measure("warm", warm_env, args.runs, base, warmup=True))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report["load_avg_after"] = os.getloadavg()

    print(f"tiny pipe, command start -> all jobs submitted (target <= {TARGET_S:.0f} s), {os.cpu_count()} CPUs")
    print(f"load average before/after: {report['load_avg_before'][0]:.2f} / {report['load_avg_after'][0]:.2f}")
    print("| case | jobs | wall median | wall min | wall runs | CPU median | config+job dirs | import nemo_run |")
    print("|---|---|---|---|---|---|---|---|")
    for c in report["cases"]:
        runs = " ".join(f"{w:.2f}" for w in c["wall_s"])
        print(
            f"| {c['case']} | {c['jobs_submitted'][0]} | {c['median_s']:.2f} s | {c['min_s']:.2f} s | {runs} | "
            f"{c['cpu_median_s']:.2f} s | {c['prepare_median_s']:.2f} s | {c['nemo_run_import_s']:.2f} s |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
