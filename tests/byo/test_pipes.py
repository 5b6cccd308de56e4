"""The pipes this journey adds: the published four-phase pretraining chain, ``-c finetune`` from the
released checkpoint, and conversions inserted where a model's format does not fit its consumer."""

from __future__ import annotations

import re

import pytest

from nemotron.errors import UserError
from nemotron.pipeline.launch_pipe import split_overrides
from nemotron.pipeline.pipe import load_pipe, pick, wire
from tests.cli.conftest import run_cli


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per step, so references read whole


ASSETS = "recipes/super3/assets/tiny"
DATA = [  # the shipped configs name cluster placeholders; the dry-run checks data inputs exist
    f"data_prep.pretrain.data.inputs=[{ASSETS}/corpus.jsonl]",
    f"data_prep.pretrain.tokenizer.path={ASSETS}/tokenizer.json",
    f"data_prep.sft.data.inputs=[{ASSETS}/chats.jsonl]",
    f"data_prep.sft.tokenizer.path={ASSETS}/tokenizer.json",
    f"data_prep.rl.data.inputs=[{ASSETS}/rl_prompts.jsonl]",
]


def graph(out: str) -> dict[str, str]:
    lines = out.split("graph (producer -> step):\n", 1)[1].split("total GPU-hours")[0].splitlines()
    return {line.split()[0]: line.strip() for line in lines if line.strip()}


def test_default_pipe_dry_run_shows_the_four_pretraining_phases_on_their_own_blends(home, capsys):
    code, out, err = run_cli(["super3", "pipe", "--dry-run", *DATA], capsys)
    assert code == 0, err
    g = graph(out)
    assert "data <- data_prep.pretrain.phase1]" in g["pretrain.phase1"]
    assert "[data <- data_prep.pretrain.phase2, model <- pretrain.phase1]" in g["pretrain.phase2"]
    assert "[data <- data_prep.pretrain.long_context, model <- pretrain.phase2]" in g["pretrain.long_context"]
    assert "model <- pretrain.long_context]" in g["pretrain.long_context_mixed"]
    assert "model <- pretrain.long_context_mixed" in g["sft"]
    assert list(g)[:4] == [
        "data_prep.pretrain.phase1",
        "data_prep.pretrain.phase2",
        "data_prep.pretrain.long_context",
        "data_prep.sft",
    ]
    assert "[model <- rl.rlvr3, data <- data_prep.rl.swe1]" in g["rl.swe1"]
    total = re.search(r"total GPU-hours of the steps that run: ([\d,]+) \(~([\d,]+) estimated", out)
    assert total, out
    assert int(total.group(2).replace(",", "")) > 300_000  # 25T pretraining tokens dominate
    table = out.split("graph (producer -> step)")[0]
    rows = {line.split()[0]: line for line in table.splitlines() if line.strip().startswith("pretrain.")}
    assert "data=pretrain-data:exp-" in rows["pretrain.phase1"]
    assert "data=pretrain-phase2-data:exp-" in rows["pretrain.phase2"]
    assert "data=pretrain-long-context-data:exp-" in rows["pretrain.long_context"]
    assert "model=pretrain-long-context-model:exp-" in rows["pretrain.long_context_mixed"]


def test_finetune_pipe_dry_run_imports_the_released_model_first(home, capsys):
    code, out, err = run_cli(
        ["super3", "pipe", "-c", "finetune", "--dry-run", "model.import.run.model=super3-released", *DATA[2:]], capsys
    )
    assert code == 0, err
    g = graph(out)
    assert list(g) == ["data_prep.sft", "data_prep.rl", "model.import", "sft", "rl.rlvr", "quantize", "eval"]
    assert "[model <- model.import, data <- data_prep.sft]" in g["sft"]
    assert "model <- sft" in g["rl.rlvr"] and "model <- rl.rlvr" in g["eval"]
    assert "model=super3-released" in out
    _, steps = load_pipe("finetune")
    assert next(s for s in steps if s.id == "model.import").overrides == {"verify.enabled": True}


def test_a_megatron_only_model_gets_an_export_before_rl(home, capsys):
    lora = ["sft.peft.method=lora", "sft.recipe=nemotron_3_super_peft_config", "sft.output.name=sft-lora-model"]
    code, out, err = run_cli(["super3", "pipe", "-c", "finetune", "--dry-run", *lora, *DATA[2:]], capsys)
    assert code == 0, err
    g = graph(out)
    assert "[model <- sft]" in g["model.export.rl.rlvr"]
    assert "model <- model.export.rl.rlvr" in g["rl.rlvr"]
    assert "model=exported-rl-rlvr-model:exp-" in next(line for line in out.splitlines() if line.startswith(" rl.rlvr"))


def test_an_hf_model_given_to_the_pipe_is_refused_at_submit(home, capsys, tmp_path):
    from tests.byo.test_add_and_formats import hf_dir

    run_cli(["artifacts", "add", str(hf_dir(tmp_path / "hf")), "--name", "byo-base", "--kind", "model"], capsys)
    pipe = tmp_path / "sft_only.yaml"
    pipe.write_text("config: default\nstages: [sft]\n")
    code, _, err = run_cli(["super3", "pipe", "-c", str(pipe), "sft.run.model=byo-base"], capsys)
    assert code == 2 and "nemotron super3 model import" in err and err.count("\n") == 1, err


def test_overrides_route_by_step_id_or_to_every_step_of_a_stage():
    _, steps = load_pipe("default")
    routed = split_overrides({"pretrain.phase2.train.train_iters": 3, "pretrain.seed": 7}, steps)
    assert routed["pretrain.phase2"] == {"train.train_iters": 3, "seed": 7}
    assert routed["pretrain.phase1"] == {"seed": 7} and routed["sft"] == {}


def test_a_repeated_stage_must_be_named_by_step_id(tmp_path):
    _, steps = load_pipe("default")
    assert pick(steps, "pretrain.phase2", "--from") == "pretrain.phase2"
    assert pick(steps, "sft", "--only") == "sft"
    with pytest.raises(UserError, match="runs as pretrain.phase1, pretrain.phase2"):
        pick(steps, "pretrain", "--from")
    bad = tmp_path / "p.yaml"
    bad.write_text("stages: [pretrain, {stage: pretrain, config: phase2}]\n")
    with pytest.raises(UserError, match="appears twice"):
        load_pipe(str(bad))
    bad.write_text("stages: [data_prep.sft, {stage: pretrain, inputs: {data: data_prep.sft}}]\n")
    with pytest.raises(UserError, match="needs pretrain-data, but data_prep.sft makes sft-data"):
        load_pipe(str(bad))


def test_two_steps_publishing_one_name_are_refused(home, capsys):
    code, _, err = run_cli(["super3", "pipe", "--dry-run", "pretrain.output.name=pretrain-model", *DATA], capsys)
    assert code == 2 and "both publish 'pretrain-model'" in err


def test_external_ports_are_wired_only_explicitly():
    _, steps = load_pipe("finetune")
    assert wire(steps)["model.import"] == {}
