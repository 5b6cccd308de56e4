"""The node-side contract: resolve inputs from train.yaml, publish the output with lineage."""

from __future__ import annotations

import shutil

import pytest
import yaml

from nemotron.artifacts.node import publish_output, resolve_config, resolve_inputs
from nemotron.artifacts.registry import Registry
from nemotron.errors import UserError


def _train_cfg(tmp_path, stage, run, output, **job_extra):
    cfg = {
        "backend": "tiny",
        "run": run,
        "output": output,
        "job": {
            "id": f"20261123-182501-{stage}-ab12cd",
            "experiment": "20261123-182501-ab12cd",
            "stage": stage,
            "config_name": "tiny",
            "config_hash": "f" * 64,
            "dir": str(tmp_path / "jobs"),
            "output_dir": str(tmp_path / "out" / stage),
            "artifacts_root": str(tmp_path / "registry"),
            "git_rev": "deadbeef",
            **job_extra,
        },
    }
    # what the node really reads is a YAML file: go through one
    path = tmp_path / f"{stage}.train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return yaml.safe_load(path.read_text())


def test_data_prep_then_sft_through_train_yaml(tmp_path, make_data):
    prep = _train_cfg(tmp_path, "data_prep.sft", {}, {"name": "tiny-sft-data"}, publish_alias="exp-ab12cd")
    assert resolve_inputs(prep) == {}
    data = publish_output(prep, make_data("packed"), {"rows": 10}, {})
    assert data.ref == "tiny-sft-data:v1" and data.kind == "sft-data"
    assert data.aliases == ["exp-ab12cd", "latest"]
    assert data.run.job_id == "20261123-182501-data_prep.sft-ab12cd" and data.run.git_rev == "deadbeef"

    Registry(tmp_path / "registry").publish(
        "tiny-pretrain-model", "model", make_data("base"), {}, [], {"stage": "pretrain"}
    )
    sft = _train_cfg(
        tmp_path,
        "sft",
        {"model": "tiny-pretrain-model:latest", "data": "tiny-sft-data:exp-ab12cd"},
        {"name": "tiny-sft-model", "aliases": ["latest", "candidate"]},
        publish_alias="exp-ab12cd",
    )
    inputs = resolve_inputs(sft)
    assert {s: a.ref for s, a in inputs.items()} == {"model": "tiny-pretrain-model:v1", "data": "tiny-sft-data:v1"}
    out = publish_output(sft, make_data("sft-out"), {"loss": 1.5}, inputs)
    assert out.kind == "model" and out.run.stage == "sft" and out.run.config_hash == "f" * 64
    assert out.inputs == ["tiny-pretrain-model:v1", "tiny-sft-data:v1"]
    assert out.input_slots == {"model": "tiny-pretrain-model:v1", "data": "tiny-sft-data:v1"}
    assert sorted(out.aliases) == ["candidate", "exp-ab12cd", "latest"]
    assert Registry(tmp_path / "registry").get("tiny-sft-model:exp-ab12cd") == out


def test_missing_input_names_its_producer(tmp_path):
    cfg = _train_cfg(
        tmp_path, "rl.rlvr", {"model": "tiny-sft-model:latest", "data": "tiny-rl-data:latest"}, {"name": "x"}
    )
    with pytest.raises(UserError) as err:
        resolve_inputs(cfg)
    assert err.value.message.startswith("2 inputs cannot be resolved: run.model: artifact 'tiny-sft-model'")
    assert "run.data: artifact 'tiny-rl-data' not found" in err.value.message
    assert "'sft' (nemotron super3 sft)" in err.value.hint and "'data_prep.rl'" in err.value.hint


def test_input_whose_data_vanished_is_reported(tmp_path, make_data):
    d = make_data("gone")
    Registry(tmp_path / "registry").publish("tiny-sft-data", "sft-data", d, {}, [], {})
    shutil.rmtree(d)
    cfg = _train_cfg(tmp_path, "data_prep.sft", {"calib": "tiny-sft-data"}, {"name": "x"})
    with pytest.raises(UserError, match="does not exist on this node"):
        resolve_inputs(cfg)


def test_config_art_refs_expand_on_the_node(tmp_path, make_data):
    Registry(tmp_path / "registry").publish("tiny-sft-data", "sft-data", make_data("d"), {"seq": 4096}, [], {})
    cfg = _train_cfg(tmp_path, "sft", {}, {"name": "x"})
    cfg["train"] = {"seq_length": "${art:tiny-sft-data,metadata.seq}"}
    assert resolve_config(cfg)["train"]["seq_length"] == 4096


def test_job_section_is_required(tmp_path):
    with pytest.raises(UserError, match="artifacts_root"):
        resolve_inputs({"run": {}})
    cfg = _train_cfg(tmp_path, "sft", {}, {})
    with pytest.raises(UserError, match="output.name"):
        publish_output(cfg, tmp_path, {}, {})


def test_tampered_input_is_caught_before_the_stage_starts(tmp_path, make_data):
    d = make_data("rl-data", {"train.jsonl": b'{"prompt": "1+1", "answer": "2"}\n'})
    Registry(tmp_path / "registry").publish("tiny-rl-data", "rl-data", d, {}, [], {})
    Registry(tmp_path / "registry").publish("tiny-sft-model", "model", make_data("m"), {}, [], {})
    cfg = _train_cfg(tmp_path, "rl.rlvr", {"model": "tiny-sft-model", "data": "tiny-rl-data"}, {"name": "x"})
    assert set(resolve_inputs(cfg)) == {"model", "data"}
    (d / "train.jsonl").write_bytes(b'{"prompt": "1+1", "answer": "3"}\n')  # same size, other content
    with pytest.raises(UserError, match=r"run.data=tiny-rl-data:v1: the data at .* changed since it was published"):
        resolve_inputs(cfg)


def test_a_published_directory_is_never_written_by_another_job(tmp_path, make_data):
    from nemotron.artifacts.node import check_output_dir

    first = _train_cfg(tmp_path, "data_prep.rl", {}, {"name": "tiny-rl-data"})
    check_output_dir(first)  # nothing published there yet
    out = make_data("x")
    first["job"]["output_dir"] = str(out)
    publish_output(first, out, {}, {})
    check_output_dir(first)  # the same job (a Slurm requeue) may continue
    second = {**first, "job": {**first["job"], "id": "another-job"}}
    with pytest.raises(UserError, match=r"holds the published tiny-rl-data:v1 \(job 20261123"):
        check_output_dir(second)
