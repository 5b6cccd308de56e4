"""``nemotron artifacts add``: format detection per kind, by-reference registration, tampering, and
the submit-time refusal of a model in the wrong format (one line naming the conversion stage)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nemotron.artifacts.add import add_reference, reference_problem
from nemotron.artifacts.formats import detect, model_formats
from nemotron.artifacts.registry import Registry
from nemotron.errors import UserError
from nemotron.pipeline import model_formats as mf
from tests.cli.conftest import run_cli


def hf_dir(root: Path, *, sharded: bool = False, drop_shard: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["NemotronHForCausalLM"], "vocab_size": 8}))
    if sharded:
        shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shards[0], "b": shards[1]}}))
        for shard in shards[: 1 if drop_shard else 2]:
            (root / shard).write_bytes(b"\0" * 64)
    else:
        (root / "model.safetensors").write_bytes(b"\0" * 64)
    return root


def megatron_dir(root: Path, iteration: int = 20) -> Path:
    (root / f"iter_{iteration:07d}").mkdir(parents=True)
    (root / f"iter_{iteration:07d}" / "common.pt").write_bytes(b"x")
    (root / "latest_checkpointed_iteration.txt").write_text(str(iteration))
    return root


def blend_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    for ext in ("bin", "idx"):
        (root / f"shard_0.{ext}").write_bytes(b"\0" * 16)
    (root / "blend.json").write_text(json.dumps({"train": [1.0, "shard_0"]}))
    return root


def parquet_dir(root: Path, columns=("input_ids", "loss_mask", "seq_start_id")) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True)
    cols = {c: pa.array([[1, 2, 3]], type=pa.list_(pa.int32())) for c in columns}
    pq.write_table(pa.table(cols), root / "train.parquet")
    pq.write_table(pa.table(cols), root / "valid.parquet")
    return root


def test_each_kind_is_detected_and_described(tmp_path):
    assert detect(hf_dir(tmp_path / "hf"), "model").metadata["format"] == "hf"
    assert detect(hf_dir(tmp_path / "hf2", sharded=True), "model").metadata["hf_dir"] == "."
    meg = detect(megatron_dir(tmp_path / "meg"), "model").metadata
    assert meg["format"] == "megatron" and meg["iteration"] == 20 and meg["megatron_checkpoint"] == "."
    assert detect(blend_dir(tmp_path / "pre"), "pretrain-data").metadata["datasets"] == 1
    sft = detect(parquet_dir(tmp_path / "sft"), "sft-data").metadata
    assert sft["splits"] == {"train": {"files": ["train.parquet"]}, "valid": {"files": ["valid.parquet"]}}
    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "train.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n')
    assert detect(tmp_path / "rl", "rl-data").metadata["val"] is None
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    assert detect(tmp_path / "tok", "tokenizer").metadata["files"] == ["tokenizer.json"]


@pytest.mark.parametrize(
    ("make", "kind", "message"),
    [
        (lambda p: hf_dir(p, sharded=True, drop_shard=True), "model", "missing shard"),
        (lambda p: (p.mkdir(), (p / "config.json").write_text("{}")), "model", "no safetensors"),
        (blend_dir, "model", "looks like pretrain-data, use --kind pretrain-data"),
        (hf_dir, "sft-data", "looks like model, use --kind model"),
        (lambda p: parquet_dir(p, columns=("input_ids",)), "sft-data", "no column(s) loss_mask, seq_start_id"),
        (lambda p: p.mkdir(), "tokenizer", "expected tokenizer.json"),
    ],
)
def test_a_kind_mismatch_is_one_line_naming_the_problem(tmp_path, make, kind, message):
    target = tmp_path / "x"
    make(target)
    with pytest.raises(UserError) as err:
        detect(target, kind)
    assert message in err.value.one_line() and "\n" not in err.value.one_line()


def test_add_is_by_reference_idempotent_and_detects_tampering(tmp_path):
    registry = Registry(tmp_path / "reg")
    src = hf_dir(tmp_path / "hf", sharded=True)
    art, created = add_reference(registry, src, name="byo-base", kind="model", metadata={"source": "hub"})
    assert created and art.path == str(src.resolve()) and art.metadata["source"] == "hub"
    assert not (tmp_path / "reg" / "byo-base" / "model.safetensors.index.json").exists()  # never copied
    again, created = add_reference(registry, src, name="byo-base", kind="model")
    assert not created and again.ref == art.ref
    assert reference_problem(art) is None
    shard = src / "model-00002-of-00002.safetensors"
    shard.write_bytes(b"\1" * 64)  # same size, new content: the mtime moves
    os.utime(shard, ns=(1, 1))
    assert "changed since they were added" in reference_problem(art)
    with pytest.raises(UserError, match="set by format detection"):
        add_reference(registry, src, name="other", kind="model", metadata={"format": "x"})


def test_model_format_table_names_the_conversion_stage(tmp_path):
    registry = Registry(tmp_path / "reg")
    hf_art, _ = add_reference(registry, hf_dir(tmp_path / "hf"), name="byo-base", kind="model")
    meg_art, _ = add_reference(registry, megatron_dir(tmp_path / "meg"), name="byo-meg", kind="model")
    assert model_formats(hf_art) == {"hf"} and model_formats(meg_art) == {"megatron"}
    problem = mf.check("sft", "megatron", "model", "byo-base", hf_art)
    assert "loads a Megatron checkpoint" in problem and "nemotron super3 model import run.model=byo-base:v1" in problem
    assert "nemotron super3 model export" in mf.check("rl.rlvr", "megatron", "model", "byo-meg", meg_art)
    assert mf.check("sft", "megatron", "model", "byo-meg", meg_art) is None
    assert mf.check("sft", "tiny", "model", "byo-base", hf_art) is None  # the tiny backend trains HF directly
    assert mf.check("eval", "megatron", "model", "byo-base", hf_art) is None


def test_hf_model_given_to_megatron_sft_fails_at_submit_naming_import(home, tmp_path, capsys):
    src = hf_dir(tmp_path / "released")
    code, out, _ = run_cli(["artifacts", "add", str(src), "--name", "byo-base", "--kind", "model"], capsys)
    assert code == 0 and "added byo-base:v1 (model, hf)" in out
    code, _, err = run_cli(["super3", "sft", "run.model=byo-base"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "Hugging Face checkpoint" in err and "nemotron super3 model import run.model=byo-base:v1" in err
    assert not list((home / "jobs").glob("*/sft/train.yaml")) if (home / "jobs").exists() else True


def test_add_cli_rejects_wrong_kind_and_bad_metadata(home, tmp_path, capsys):
    src = hf_dir(tmp_path / "released")
    code, _, err = run_cli(["artifacts", "add", str(src), "--name", "d", "--kind", "sft-data"], capsys)
    assert code == 2 and "looks like model" in err
    code, _, err = run_cli(["artifacts", "add", str(src), "--name", "d", "--kind", "model", "-m", "novalue"], capsys)
    assert code == 2 and "KEY=VALUE" in err
    code, out, _ = run_cli(["artifacts", "show", "d"], capsys)
    assert code == 2  # nothing half-registered


def test_a_path_as_run_model_is_registered_on_submit_and_only_checked_on_dry_run(home, tmp_path, capsys):
    src = hf_dir(tmp_path / "Released-Model")
    code, _, err = run_cli(["super3", "sft", "--dry-run", f"run.model={src}"], capsys)
    assert code == 0 and "would be registered as Released-Model (model)" in err
    assert Registry(home / "artifacts").versions("Released-Model") == []
    code, _, err = run_cli(["super3", "sft", f"run.model={src}"], capsys)
    assert code == 2 and "nemotron super3 model import run.model=Released-Model:v1" in err
    art = Registry(home / "artifacts").get("Released-Model")
    assert art.path == str(src.resolve()) and art.run.stage == "artifacts.add"
    code, _, err = run_cli(["super3", "sft", "--dry-run", f"run.model={tmp_path}"], capsys)
    assert code == 2 and "is not model" in err


def test_verify_flag_turns_the_check_on(home, tmp_path, capsys):
    import yaml

    code, out, err = run_cli(["super3", "model", "import", "-c", "tiny", "--dry-run", "--verify"], capsys)
    assert code == 0, err
    train_yaml = next((home / "jobs").glob("*/model.import/train.yaml"))
    assert yaml.safe_load(train_yaml.read_text())["verify"]["enabled"] is True


def test_an_added_artifact_is_mirrored_to_wandb_like_any_other(tmp_path, monkeypatch, capsys):
    from nemotron.artifacts.wandb_offline import logged_artifacts

    env = tmp_path / "env.toml"
    env.write_text(f'[wandb]\nproject = "nemotron-test"\nmode = "offline"\ndir = "{tmp_path / "wandb"}"\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env))
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    src = hf_dir(tmp_path / "released")
    code, _, err = run_cli(["artifacts", "add", str(src), "--name", "byo-base", "--kind", "model"], capsys)
    assert code == 0, err
    registry = Registry(tmp_path / "home" / "artifacts")
    state = registry.mirror_state(registry.get("byo-base"))
    assert state["state"] == "offline" and state["verified"] is True and state["pending_edges"] == []
    logged = logged_artifacts(Path(state["offline_dir"]))
    assert [a["name"] for a in logged] == ["byo-base"] and logged[0]["type"] == "model"
    assert logged[0]["metadata"]["nemotron"]["run"]["stage"] == "artifacts.add"


def test_the_node_refuses_an_added_input_changed_after_submit(tmp_path):
    from nemotron.artifacts.node import resolve_inputs

    registry = Registry(tmp_path / "reg")
    src = hf_dir(tmp_path / "hf")
    add_reference(registry, src, name="byo-base", kind="model")
    cfg = {"run": {"model": "byo-base"}, "job": {"stage": "model.import", "artifacts_root": str(tmp_path / "reg")}}
    assert resolve_inputs(cfg)["model"].ref == "byo-base:v1"
    (src / "config.json").write_text("{}")
    with pytest.raises(UserError, match="changed since they were added"):
        resolve_inputs(cfg)
