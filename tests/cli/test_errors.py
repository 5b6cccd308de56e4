"""Every user error ends as one line on stderr, exit code 2, no traceback, and writes no job files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import run_bin, run_cli

CASES = [
    # (args, words the one-line message must contain)
    (
        ["super3", "pretrain", "-d", "trian.train_iters=5"],
        ["unknown config key 'trian.train_iters'", "did you mean train.train_iters?"],
    ),
    (["super3", "sft", "-d", "optimzer.lr=1e-4"], ["optimzer.lr", "did you mean optimizer.lr?"]),
    (["super3", "pretrain", "-d", "train.train_iters=abc"], ["train.train_iters", "integer"]),
    (["super3", "pretrain", "-d", "train.global_batch_size=-8"], ["train.global_batch_size", "greater than 0"]),
    (["super3", "pretrain", "-d", "resources.nodes=0"], ["resources.nodes", "greater than 0"]),
    (["super3", "pretrain", "-d", "parallel.tensor=3"], ["TP*PP*CP", "does not divide the 64 GPUs"]),
    (
        ["super3", "pretrain", "-d", "parallel.expert=64", "resources.nodes=4"],
        ["expert parallel 64", "does not divide"],
    ),
    (
        ["super3", "pretrain", "-d", "parallel.expert=3", "resources.nodes=3"],
        ["num_moe_experts (512)", "parallel.expert (3)"],
    ),
    (
        ["super3", "pretrain", "-d", "parallel.tensor=8", "model.num_attention_heads=36"],
        ["num_attention_heads (36)", "parallel.tensor (8)"],
    ),
    (
        [
            "super3",
            "pretrain",
            "-d",
            "parallel.pipeline=16",
            "parallel.tensor=1",
            "parallel.expert=2",
            "parallel.sequence_parallel=false",
        ],
        ["num_layers (88)", "parallel.pipeline (16)"],
    ),
    (["super3", "pretrain", "-d", "train.global_batch_size=100"], ["global_batch_size (100)", "micro_batch_size"]),
    (["super3", "pretrain", "-d", "model.num_layers=80"], ["hybrid_pattern has 88 layers"]),
    (["super3", "pretrain", "-d", "-c", "nope"], ["no config 'nope'", "available: default"]),
    (["super3", "pretrain", "-d", "-c", "missing.yaml"], ["missing.yaml does not exist"]),
    (["super3", "pretrain", "-d", "-r", "nosuch"], ["unknown profile 'nosuch'", "known profiles", "cluster", "big"]),
    (["super3", "pretrain", "-r", "cluster", "-b", "cluster"], ["--run and --batch cannot be used together"]),
    (["super3", "pretrain", "-d", "justaword"], ["unexpected argument 'justaword'", "key=value"]),
    (["super3", "pretrain", "-d", "run.dat=x:latest"], ["'run.dat' is not an input", "did you mean run.data?"]),
    (["super3", "pretrain", "-d", "run.data=../../etc:latest"], ["run.data", "artifact reference"]),
    (["super3", "pretrain", "-d", "precision=fp16"], ["precision", "'bf16', 'fp8' or 'nvfp4'"]),
    (["super3", "pretrain", "-d", "resources.time=tomorrow"], ["Slurm time limit"]),
    (["super3", "config", "validate", "nostage"], ["unknown stage 'nostage'", "known stages"]),
]


@pytest.mark.parametrize(("args", "needles"), CASES, ids=[" ".join(c[0][1:]) for c in CASES])
def test_user_error_is_one_line_exit_2(home: Path, capsys: pytest.CaptureFixture[str], args, needles) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_failed_validation_writes_no_job_dir(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(["super3", "pretrain", "-d", "trian.train_iters=5"], capsys)
    assert code == 2
    assert not (home / "jobs").exists()


def test_missing_input_names_the_producing_stage(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Submitting a stage whose input artifact does not exist fails before anything is submitted."""
    code, out, err = run_cli(["super3", "sft", "-c", "tiny"], capsys)
    assert code == 2, err
    assert "tiny-pretrain-model" in err
    assert "pretrain" in err.split("—")[-1] or "produced by" in err
    assert not (home / "jobs").exists()


def test_debug_flag_shows_the_traceback(home: Path) -> None:
    done = run_bin(["--debug", "super3", "pretrain", "-d", "trian.train_iters=5"])
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown config key")


def test_entry_point_exit_code_and_single_line(home: Path) -> None:
    done = run_bin(["super3", "pretrain", "-d", "parallel.tensor=3"])
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_click_usage_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["super3", "pretrain", "--no-such-flag"], capsys)
    assert code == 2
    code, _, err = run_cli(["super3", "nostage"], capsys)
    assert code == 2 and "nostage" in err
