"""Fixtures: a real registry in tmp, real data directories, a published Super3-shaped chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.artifacts.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def make_data(tmp_path: Path):
    """Create a small data directory (the registry only references it)."""

    def make(name: str, files: dict[str, bytes] | None = None) -> Path:
        directory = tmp_path / "outputs" / name
        directory.mkdir(parents=True, exist_ok=True)
        for rel, content in (files or {"part-0.bin": name.encode() * 10}).items():
            (directory / rel).parent.mkdir(parents=True, exist_ok=True)
            (directory / rel).write_bytes(content)
        return directory

    return make


def job(stage: str, job_id: str, config_hash: str = "", experiment: str = "exp-1") -> dict:
    """A train.yaml-shaped ``job:`` section."""
    return {
        "id": job_id,
        "experiment": experiment,
        "stage": stage,
        "config_name": "tiny",
        "config_hash": config_hash or f"hash-{job_id}",
        "git_rev": "abc1234",
    }


@pytest.fixture(name="job")
def job_fixture():
    return job


@pytest.fixture
def chain(registry: Registry, make_data):
    """The Super3 recipe in miniature: data prep x3 -> pretrain -> sft -> rlvr -> quantize -> eval."""
    p = registry.publish
    pre = p("pretrain-data", "pretrain-data", make_data("pre"), {"tokens": 1000}, [], job("data_prep.pretrain", "j1"))
    sftd = p("sft-data", "sft-data", make_data("sftd"), {"rows": 475}, [], job("data_prep.sft", "j2"))
    rld = p("rl-data", "rl-data", make_data("rld"), {}, [], job("data_prep.rl", "j3"))
    base = p("pretrain-model", "model", make_data("base"), {}, {"data": pre}, job("pretrain", "j4"))
    sft = p("sft-model", "model", make_data("sft"), {}, {"model": base, "data": sftd}, job("sft", "j5"))
    rl = p("rl-rlvr-model", "model", make_data("rl"), {}, {"model": sft, "data": rld}, job("rl.rlvr", "j6"))
    q = p("quantized-model", "quantized-model", make_data("q"), {}, {"model": rl, "calib": sftd}, job("quantize", "j7"))
    ev = p(
        "eval-results",
        "eval-results",
        make_data("ev"),
        {"score": 0.5},
        {"model": rl, "quantized": q},
        job("eval", "j8"),
    )
    return {"pre": pre, "sftd": sftd, "rld": rld, "base": base, "sft": sft, "rl": rl, "q": q, "ev": ev}
