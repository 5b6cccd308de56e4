"""The W&B mirror with the real wandb library: offline runs read back from disk, disabled, no network."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nemotron.artifacts.node import publish_output, resolve_inputs
from nemotron.artifacts.registry import Registry
from nemotron.artifacts.wandb_mirror import SyncAction, WandbMirror, WandbSettings, plan_sync, run_sync, wandb_run_id
from nemotron.artifacts.wandb_offline import logged_artifacts, run_info, wait_for_artifact
from nemotron.errors import UserError

DEAD_URL = "http://127.0.0.1:9"  # discard port: connection refused at once


@pytest.fixture(autouse=True)
def wandb_sandbox(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        path = tmp_path / var.lower()
        path.mkdir()
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "3")
    yield
    import wandb

    if wandb.run is not None:
        wandb.run.finish()


def _cfg(tmp_path, stage, run, name, wandb_cfg, job_id):
    return {
        "run": run,
        "output": {"name": name},
        "job": {
            "id": job_id,
            "experiment": "exp-42",
            "stage": stage,
            "config_hash": "c" * 64,
            "artifacts_root": str(tmp_path / "registry"),
            "git_rev": "0123abc",
            "publish_alias": "exp-42",
            "wandb": wandb_cfg,
        },
    }


def _two_stages(tmp_path, make_data, wandb_cfg):
    prep = _cfg(tmp_path, "data_prep.sft", {}, "tiny-sft-data", wandb_cfg, "job-prep-1")
    data = publish_output(prep, make_data("packed", {"a.parquet": b"x" * 100, "meta/m.json": b"{}"}), {"rows": 5}, {})
    Registry(tmp_path / "registry").publish(
        "tiny-pretrain-model", "model", make_data("base"), {}, [], {"stage": "pretrain"}
    )
    sft = _cfg(
        tmp_path,
        "sft",
        {"model": "tiny-pretrain-model", "data": "tiny-sft-data:exp-42"},
        "tiny-sft-model",
        wandb_cfg,
        "job-sft-1",
    )
    inputs = resolve_inputs(sft)
    model = publish_output(sft, make_data("sft-out"), {"loss": 1.25}, inputs)
    return data, model


def test_offline_mode_logs_artifacts_and_keeps_edges_for_sync(tmp_path, make_data, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # the compute-node knob wins over the dict's mode
    data, model = _two_stages(tmp_path, make_data, {"project": "nemotron-test", "mode": "online"})
    registry = Registry(tmp_path / "registry")

    state = registry.mirror_state(model)
    assert state["state"] == "offline" and state["uploaded"] is False and state["verified"] is True
    assert state["run_id"] == wandb_run_id("job-sft-1", "") == "job-sft-1"
    assert state["pending_edges"] == ["tiny-pretrain-model:v1", "tiny-sft-data:v1"]
    run_dir = Path(state["offline_dir"])
    assert run_dir.is_dir() and str(run_dir).startswith(str(tmp_path / "wandb_dir"))

    # read back what wandb really wrote into the offline run's transaction log
    logged = logged_artifacts(run_dir)
    assert [a["name"] for a in logged] == ["tiny-sft-model"]
    art = logged[0]
    assert art["type"] == "model" and art["run_id"] == "job-sft-1" and art["project"] == "nemotron-test"
    assert set(art["aliases"]) == {"latest", "exp-42", "local-v1"}
    assert art["metadata"]["loss"] == 1.25
    meta = art["metadata"]["nemotron"]
    assert meta["ref"] == "tiny-sft-model:v1" and meta["digest"] == model.digest
    assert meta["inputs"] == ["tiny-pretrain-model:v1", "tiny-sft-data:v1"]
    assert meta["input_slots"] == {"model": "tiny-pretrain-model:v1", "data": "tiny-sft-data:v1"}
    assert meta["run"]["job_id"] == "job-sft-1" and meta["run"]["config_hash"] == "c" * 64
    assert art["references"] == [(Path(model.path) / "part-0.bin").as_uri()]  # referenced, not uploaded
    info = run_info(run_dir)
    assert (info["job_type"], info["group"], info["name"]) == ("sft", "exp-42", "job-sft-1")

    data_logged = logged_artifacts(Path(registry.mirror_state(data)["offline_dir"]))
    assert sorted(data_logged[0]["references"]) == sorted(
        (Path(data.path) / rel).as_uri() for rel in ("a.parquet", "meta/m.json")
    )

    plan = plan_sync(registry)
    assert SyncAction("upload", "tiny-sft-model:v1", str(run_dir)) in plan
    assert plan.index(
        SyncAction("upload", "tiny-sft-data:v1", registry.mirror_state(data)["offline_dir"])
    ) < plan.index(SyncAction("use", "tiny-sft-model:v1", "tiny-sft-data:v1"))
    # tiny-pretrain-model was published without W&B: sync logs it before the edge that needs it
    assert plan.index(SyncAction("log", "tiny-pretrain-model:v1")) < plan.index(
        SyncAction("use", "tiny-sft-model:v1", "tiny-pretrain-model:v1")
    )


def test_disabled_mode_writes_nothing(tmp_path, make_data, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    data, model = _two_stages(tmp_path, make_data, {"project": "nemotron-test"})
    assert not list((tmp_path / "wandb_dir").rglob("*.wandb"))
    registry = Registry(tmp_path / "registry")
    assert registry.get("tiny-sft-model").inputs == ["tiny-pretrain-model:v1", "tiny-sft-data:v1"]
    assert registry.mirror_state(model) is None
    assert SyncAction("log", "tiny-sft-model:v1") in plan_sync(registry)
    # the mirror itself in disabled mode records that it did nothing
    state = WandbMirror(WandbSettings.from_dict({"project": "p"})).publish(registry, data, [])
    assert state["state"] == "disabled" and not list((tmp_path / "wandb_dir").rglob("*.wandb"))


def test_publish_inside_an_active_run_uses_that_run(tmp_path, make_data, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    run = wandb.init(project="nemotron-test", id="trainer-run")
    cfg = _cfg(tmp_path, "data_prep.rl", {}, "tiny-rl-data", {"project": "nemotron-test"}, "job-rl-prep")
    art = publish_output(cfg, make_data("rl"), {}, {})
    assert wandb.run is run  # not finished by the mirror
    run.finish()
    state = Registry(tmp_path / "registry").mirror_state(art)
    assert state["run_id"] == "trainer-run" and "verified" not in state  # the trainer's run, still open then
    record = wait_for_artifact(Path(state["offline_dir"]), "tiny-rl-data")  # the service flushes late
    assert record is not None and record["metadata"]["nemotron"]["run"]["job_id"] == "job-rl-prep"


def test_online_without_network_falls_back_to_offline_fast(tmp_path, make_data, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)  # a dummy: the server is unreachable anyway
    settings = WandbSettings.from_dict({"project": "nemotron-test", "base_url": DEAD_URL, "init_timeout": 5})
    warnings: list[str] = []
    registry = Registry(tmp_path / "registry", mirror=WandbMirror(settings, warn=warnings.append))
    start = time.monotonic()
    art = registry.publish(
        "tiny-sft-data", "sft-data", make_data("d"), {}, [], {"stage": "data_prep.sft", "id": "j-online"}
    )
    assert time.monotonic() - start < 40
    state = registry.mirror_state(art)
    assert state["state"] == "offline" and "online init failed" in warnings[0]
    assert [a["name"] for a in logged_artifacts(Path(state["offline_dir"]))] == ["tiny-sft-data"]


def test_mirror_failure_never_fails_the_publish(tmp_path, make_data, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    settings = WandbSettings.from_dict({"project": "nemotron-test", "base_url": DEAD_URL, "init_timeout": 3})
    warnings: list[str] = []
    mirror = WandbMirror(settings, allow_offline_fallback=False, warn=warnings.append)
    registry = Registry(tmp_path / "registry", mirror=mirror)
    art = registry.publish("tiny-sft-data", "sft-data", make_data("d"), {}, [], {"stage": "data_prep.sft"})
    assert registry.get("tiny-sft-data").version == 1
    state = registry.mirror_state(art)
    assert state["state"] == "failed" and state["error"] and "sync" in warnings[0]
    assert SyncAction("log", "tiny-sft-data:v1") in plan_sync(registry)


def test_sync_without_network_is_a_quick_user_error(tmp_path, make_data, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    registry = Registry(tmp_path / "registry")
    registry.publish("tiny-sft-data", "sft-data", make_data("d"), {}, [], {})
    settings = WandbSettings.from_dict({"project": "nemotron-test", "base_url": DEAD_URL, "http_timeout": 3})
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach W&B"):
        run_sync(registry, settings)
    assert time.monotonic() - start < 30
    assert registry.mirror_state(registry.get("tiny-sft-data")) is None  # nothing half-recorded


def test_settings_from_dict(monkeypatch):
    assert WandbSettings.from_dict(None) is None and WandbSettings.from_dict({"entity": "x"}) is None
    s = WandbSettings.from_dict({"project": "p", "entity": "e", "mode": "offline"})
    assert (s.project, s.entity, s.mode) == ("p", "e", "offline")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert WandbSettings.from_dict({"project": "p", "mode": "online"}).mode == "disabled"
    monkeypatch.setenv("WANDB_MODE", "sideways")
    with pytest.raises(UserError, match="mode"):
        WandbSettings.from_dict({"project": "p"})
