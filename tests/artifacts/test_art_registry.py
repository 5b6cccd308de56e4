"""The local registry on a real filesystem: versions, aliases, errors, lineage pinning, find."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nemotron.artifacts.fsio import read_json
from nemotron.artifacts.model import parse_ref
from nemotron.artifacts.registry import Registry, default_root
from nemotron.errors import UserError


def test_publish_get_versions_and_aliases(registry, make_data, job):
    data = make_data("d")
    a1 = registry.publish("sft-data", "sft-data", data, {"rows": 3}, [], job("data_prep.sft", "j1"))
    a2 = registry.publish(
        "sft-data", "sft-data", data, {"rows": 4}, [], job("data_prep.sft", "j2"), aliases=("latest", "best")
    )
    assert (a1.version, a2.version) == (1, 2)
    assert a1.ref == "sft-data:v1" and a1.path == str(data.resolve())
    assert registry.get("sft-data").version == 2
    assert registry.get("sft-data:latest").metadata == {"rows": 4}
    assert registry.get("sft-data:best").version == 2
    assert registry.get("sft-data:v1").metadata == {"rows": 3}
    # latest moved: v1 no longer carries it, v2 carries both
    assert registry.get("sft-data:v1").aliases == []
    assert registry.get("sft-data:v2").aliases == ["best", "latest"]
    run = registry.get("sft-data:v1").run
    assert (run.stage, run.job_id, run.experiment, run.git_rev) == ("data_prep.sft", "j1", "exp-1", "abc1234")
    assert run.config_hash == "hash-j1" and run["stage"] == "data_prep.sft"
    assert run.created_at.endswith("Z") and run.host


def test_version_files_are_immutable_json_and_data_is_referenced(registry, make_data, job):
    data = make_data("big", {"shard.bin": os.urandom(4096)})
    art = registry.publish("pretrain-data", "pretrain-data", data, {}, [], job("data_prep.pretrain", "j1"))
    stored = read_json(registry.root / "pretrain-data" / "v1.json")
    assert stored["path"] == str(data.resolve()) and stored["digest"] == art.digest
    assert stored["run"]["job_id"] == "j1" and stored["inputs"] == []
    # nothing of the data was copied into the registry, and no temp file is left behind
    sizes = sum(p.stat().st_size for p in registry.root.rglob("*") if p.is_file())
    assert sizes < 4096
    assert not [p for p in registry.root.rglob("*") if p.name.endswith(".tmp")]
    before = (registry.root / "pretrain-data" / "v1.json").read_bytes()
    registry.publish("pretrain-data", "pretrain-data", data, {}, [], job("data_prep.pretrain", "j2"))
    assert (registry.root / "pretrain-data" / "v1.json").read_bytes() == before


def test_inputs_are_pinned_to_exact_versions(registry, make_data, job):
    d = make_data("d")
    registry.publish("sft-data", "sft-data", d, {}, [], job("data_prep.sft", "j1"))
    model = registry.publish("sft-model", "model", d, {}, {"data": "sft-data:latest"}, job("sft", "j2"))
    registry.publish("sft-data", "sft-data", d, {}, [], job("data_prep.sft", "j3"))  # latest moves on
    again = registry.get("sft-model:v1")
    assert again.inputs == ["sft-data:v1"] == model.inputs
    assert again.input_slots == {"data": "sft-data:v1"}
    assert [a.ref for a in registry.consumers("sft-data:v1")] == ["sft-model:v1"]
    assert registry.consumers("sft-data:v2") == []


def test_missing_artifact_error_names_the_producing_stage(registry, make_data, job):
    with pytest.raises(UserError) as err:
        registry.get("rl-rlvr-model:latest")
    assert "rl-rlvr-model" in err.value.message and "rl.rlvr" in err.value.hint and "rl rlvr" in err.value.hint
    with pytest.raises(UserError) as err:
        registry.get("tiny-sft-data")
    assert "data_prep.sft" in err.value.hint
    registry.publish("sft-data", "sft-data", make_data("d"), {}, [], job("data_prep.sft", "j1"))
    with pytest.raises(UserError, match="no version v7"):
        registry.get("sft-data:v7")
    with pytest.raises(UserError, match="no alias 'best'") as err:
        registry.get("sft-data:best")
    assert "latest" in err.value.hint
    with pytest.raises(UserError, match="not found"):
        registry.publish("sft-model", "model", make_data("m"), {}, ["rl-data:latest"], job("sft", "j2"))


@pytest.mark.parametrize(
    "bad",
    ["../etc", "a/b", "/abs", ".hidden", "", "x" * 200, "name with space", "..", "a\\b", "v.json", "-lead"],
)
def test_names_are_validated_against_path_traversal(registry, make_data, bad):
    with pytest.raises(UserError):
        registry.publish(bad, "model", make_data("d"), {}, [], {})
    with pytest.raises(UserError):
        registry.get(bad)
    assert not (registry.root.parent / "etc").exists()


def test_aliases_kinds_and_paths_are_validated(registry, make_data, tmp_path):
    d = make_data("d")
    with pytest.raises(UserError, match="looks like a version"):
        registry.publish("m", "model", d, {}, [], {}, aliases=("v2",))
    with pytest.raises(UserError, match="alias"):
        registry.publish("m", "model", d, {}, [], {}, aliases=("../x",))
    with pytest.raises(UserError, match="kind"):
        registry.publish("m", "Model Kind", d, {}, [], {})
    with pytest.raises(UserError, match="does not exist"):
        registry.publish("m", "model", tmp_path / "nope", {}, [], {})
    with pytest.raises(UserError, match="JSON"):
        registry.publish("m", "model", d, {"when": object()}, [], {})
    registry.publish("m", "model", d, {}, [], {})
    with pytest.raises(UserError, match="kind model"):
        registry.publish("m", "sft-data", d, {}, [], {})
    assert [a.version for a in registry.versions("m")] == [1]


def test_parse_ref():
    assert str(parse_ref("a")) == "a:latest"
    assert parse_ref("a:v12").version == 12
    assert parse_ref("a:best").alias == "best"
    for bad in ("a:v0", "a:", ":x", "a:b:c", "a:../x"):
        with pytest.raises(UserError):
            parse_ref(bad)


def test_set_and_remove_alias(registry, make_data):
    d = make_data("d")
    for _ in range(3):
        registry.publish("m", "model", d, {}, [], {})
    registry.set_alias("m:v1", "golden")
    assert registry.get("m:golden").version == 1
    registry.set_alias("m:latest", "golden")  # an alias points at one version only
    assert registry.get("m:golden").version == 3 and "golden" not in registry.get("m:v1").aliases
    registry.remove_alias("m", "golden")
    with pytest.raises(UserError):
        registry.get("m:golden")


def test_latest_without_alias_falls_back_to_newest(registry, make_data):
    d = make_data("d")
    registry.publish("m", "model", d, {}, [], {}, aliases=())
    registry.publish("m", "model", d, {}, [], {}, aliases=("exp-9",))
    assert registry.get("m").version == 2 and registry.get("m:exp-9").version == 2


def test_find_by_config_hash_skips_vanished_or_changed_data(registry, make_data, job):
    d1, d2 = make_data("one"), make_data("two")
    registry.publish("m", "model", d1, {}, [], job("sft", "j1", config_hash="H"))
    registry.publish("m", "model", d2, {}, [], job("sft", "j2", config_hash="H"))
    registry.publish("m", "model", d2, {}, [], job("sft", "j3", config_hash="OTHER"))
    assert registry.find("m", config_hash="H").version == 2
    assert registry.find("m", config_hash="H", stage="pretrain") is None
    assert registry.find("m", config_hash="nope") is None
    assert registry.find("absent", config_hash="H") is None
    (d2 / "part-0.bin").write_bytes(b"changed")
    assert registry.find("m", config_hash="H").version == 2  # path still there
    assert registry.find("m", config_hash="H", verify_digest=True).version == 1
    for f in d1.iterdir():
        f.unlink()
    d1.rmdir()
    assert registry.find("m", config_hash="H", verify_digest=True) is None


def test_list_by_kind(chain, registry):
    assert {a.name for a in registry.list("model")} == {"pretrain-model", "sft-model", "rl-rlvr-model"}
    assert [a.name for a in registry.list("sft-data")] == ["sft-data"]
    assert len(registry.list()) == 8 and registry.names()[0] == "eval-results"


def test_index_lagging_behind_files_is_repaired(registry, make_data):
    """A crash between claiming v2.json and updating index.json must not reuse v2."""
    d = make_data("d")
    registry.publish("m", "model", d, {}, [], {})
    v1 = json.loads((registry.root / "m" / "v1.json").read_text())
    (registry.root / "m" / "v2.json").write_text(json.dumps({**v1, "version": 2}))  # index not updated
    art = registry.publish("m", "model", d, {}, [], {})
    assert art.version == 3
    index = read_json(registry.root / "m" / "index.json")
    assert index["versions"] == [1, 2, 3] and index["aliases"]["latest"] == 3


def test_default_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("NEMOTRON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT", raising=False)
    assert default_root() == tmp_path / "home" / "artifacts"
    assert Registry().root == tmp_path / "home" / "artifacts"
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(tmp_path / "shared"))
    assert default_root() == Path(tmp_path / "shared")


def test_empty_registry_lists_nothing(tmp_path):
    reg = Registry(tmp_path / "absent")
    assert reg.list() == [] and reg.names() == []
    assert not (tmp_path / "absent").exists()


def test_publish_into_another_versions_directory_is_refused(tmp_path):
    """v1 would silently point at v2's data: a published directory is immutable."""
    from nemotron.errors import UserError

    registry = Registry(tmp_path / "registry")
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text("v1 rows\n")
    v1 = registry.publish("tiny-rl-data", "rl-data", out, run={"id": "job-1"})
    again = registry.publish("tiny-rl-data", "rl-data", out, run={"id": "job-1"})  # identical: allowed
    assert again.version == 2 and again.digest == v1.digest and registry.owner_of(out).ref == "tiny-rl-data:v1"
    (out / "train.jsonl").write_text("v2 rows\n")
    with pytest.raises(UserError, match=r"holds tiny-rl-data:v1 \(job job-1\) and its content changed"):
        registry.publish("tiny-rl-data", "rl-data", out, run={"id": "job-2"})
    with pytest.raises(UserError, match="holds tiny-rl-data:v1"):
        registry.publish("other-data", "rl-data", out)
    assert [a.version for a in registry.versions("tiny-rl-data")] == [1, 2]
    with pytest.raises(UserError, match="changed since it was published"):
        registry.verify(v1)
