# ruff: noqa: F811  (the `home` fixture is imported from tests/cli/conftest.py)
"""The local executor refuses megatron (GPU) stages with one line, before anything starts.

Before: ``super3 pretrain`` without ``-c tiny`` on the local executor started 8 torchrun workers that
each died on ``import megatron.bridge`` (~260 lines of tracebacks).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _jobkit import make_job, new_id

from nemotron.config.loader import load_stage_config
from nemotron.env.profiles import Profile
from nemotron.errors import UserError
from nemotron.execution.executors import local_gpu_problem, placement
from nemotron.execution.submit import submit
from nemotron.paths import nemorun_home
from nemotron.pipeline.stages import get_stage
from tests.cli.conftest import home, run_bin, run_cli  # noqa: F401

LOCAL = Profile(name="local", executor="local")


@pytest.mark.parametrize(
    ("args", "gpus"),
    [
        (["super3", "pretrain"], 64),
        (["super3", "sft", "-c", "lora"], None),
        (["super3", "rl", "rlvr"], None),
        (["super3", "quantize"], None),
        (["super3", "eval"], None),
    ],
    ids=["pretrain", "sft-lora", "rl-rlvr", "quantize", "eval"],
)
def test_megatron_stage_on_local_is_one_line_exit_2(home: Path, capsys, args, gpus) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: stage '") and "megatron (GPU) backend" in lines[0]
    assert "local executor" in lines[0] and "-c tiny" in lines[0]
    if gpus:
        assert f"on {gpus} GPUs" in lines[0]
    assert "Traceback" not in out + err
    assert not (home / "jobs").exists(), "refused before any job directory is written"


def _experiments() -> set[str]:
    root = nemorun_home() / "experiments"
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


def test_entry_point_prints_one_line_and_starts_no_torchrun(home: Path) -> None:
    before = _experiments()
    done = run_bin(["super3", "pretrain"])
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "ModuleNotFoundError" not in done.stdout + done.stderr
    assert _experiments() == before, "nothing was handed to NeMo-Run"


def test_dry_run_still_plans_and_warns(home: Path, capsys) -> None:
    code, out, err = run_cli(["super3", "pretrain", "--dry-run"], capsys)
    assert code == 0, err
    assert "Dry run" in out
    assert "warning: submitting now would fail: stage 'pretrain' runs the megatron (GPU) backend" in err


def test_cpu_stages_are_not_refused(home: Path, capsys) -> None:
    """Tiny stages, and data prep (``backend: megatron`` names its output format; it runs on CPUs)."""
    code, out, err = run_cli(["super3", "pretrain", "-c", "tiny", "--dry-run"], capsys)
    assert code == 0, err
    assert "megatron (GPU) backend" not in err
    for name in ("data_prep.pretrain", "data_prep.sft", "data_prep.rl"):
        cfg = load_stage_config(get_stage(name), None).data
        assert cfg["backend"] == "megatron" and local_gpu_problem(get_stage(name), cfg, LOCAL) is None
    cfg = load_stage_config(get_stage("quantize"), None).data
    assert "quantize" in local_gpu_problem(get_stage("quantize"), cfg, LOCAL)


def test_submit_refuses_a_megatron_job_on_a_local_profile(home: Path) -> None:
    """The same check guards ``submit`` itself, so ``pipe`` and any other caller get it too."""
    exp = new_id("loc-gpu")
    ok = make_job(exp, "prep", "print('must not run')\n")
    gpu = make_job(
        exp,
        "pretrain",
        "print('must not run')\n",
        resources={"nodes": 1, "gpus_per_node": 8, "time": "00:05:00", "container": "img"},
        extra_cfg={"backend": "megatron"},
    )
    with pytest.raises(UserError, match=r"stage 'pretrain' runs the megatron \(GPU\) backend on 8 GPUs in img"):
        submit([ok, gpu], LOCAL, detach=False)
    assert not Path(placement(exp, LOCAL).local_exp_dir).exists(), "refused before the first job started"
