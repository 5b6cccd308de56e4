"""Eval: nemo-evaluator-launcher configs, result parsing, quantized-vs-baseline checks, --show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from super3.megatron import eval as ev

from nemotron.errors import UserError
from nemotron.node.results import RESULTS_FILE, parse_results_yml, read_results, show_results

from .recipes_support import artifact, hf_model, load_reference, resolved_config, tree_problems

EVALUATOR = load_reference("nemo_evaluator")


def _eval_cfg(tmp_path, **overrides):
    return resolved_config("eval", "default", tmp_path, **{"launcher.hostname": "login", **overrides})


def write_results(path: Path, scores: dict[str, float]) -> None:
    """An evaluator results.yml: results.tasks.<task>.metrics.<metric>.scores.<metric>.value."""
    tasks = {
        task: {"metrics": {"acc": {"scores": {"acc": {"value": value, "stats": {"stderr": 0.01}}}}}}
        for task, value in scores.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"results": {"tasks": tasks}}))


def _quantized(tmp_path: Path):
    root = tmp_path / "quant"
    for name in ("mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"):
        (root / name / "hf").mkdir(parents=True)
        (root / name / "hf" / "config.json").write_text("{}")
    from nemotron.artifacts.quantized import quantized_entry

    models = {
        n: quantized_entry(f"{n}/hf", n.split("_")[2])
        for n in ("mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative")
    }
    return artifact("quantized-model", "quantized-model", root, {"models": models})


def test_launcher_config_uses_published_names_and_tasks(tmp_path):
    cfg = _eval_cfg(tmp_path)
    plan = ev.build_eval_plan(cfg, {"model": hf_model(tmp_path / "model")}, tmp_path / "out")
    (entry,) = plan
    conf = entry["config"]
    assert tree_problems(conf, EVALUATOR["config"]) == []
    assert [t["name"] for t in conf["evaluation"]["tasks"]] == EVALUATOR["published_tasks"]
    assert conf["deployment"]["checkpoint_path"] == str(tmp_path / "model" / "hf")
    assert (
        conf["deployment"]["tensor_parallel_size"] == 8 and "--max-model-len 32768" in conf["deployment"]["extra_args"]
    )
    assert {"execution": "slurm/default"} in conf["defaults"] and {"deployment": "vllm"} in conf["defaults"]
    assert "limit_samples" not in conf["evaluation"]["nemo_evaluator_config"]["config"]["params"]
    cmd = ev.launcher_command(entry["config_path"])
    assert cmd[0] == EVALUATOR["cli"]["command"] and cmd[2] in EVALUATOR["cli"]["run_args"]


def test_quantized_exports_are_evaluated_next_to_the_model(tmp_path):
    cfg = _eval_cfg(tmp_path, **{"eval.limit": 50})
    plan = ev.build_eval_plan(
        cfg, {"model": hf_model(tmp_path / "model"), "quantized": _quantized(tmp_path)}, tmp_path / "o"
    )
    assert [e["label"] for e in plan] == ["model", "mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"]
    assert plan[2]["config"]["deployment"]["checkpoint_path"] == str(
        tmp_path / "quant" / "mamba_moe_nvfp4_conservative" / "hf"
    )
    assert plan[0]["config"]["evaluation"]["nemo_evaluator_config"]["config"]["params"]["limit_samples"] == 50


def test_results_parse_and_tolerance_checks(tmp_path):
    cfg = _eval_cfg(tmp_path)
    plan = ev.build_eval_plan(
        cfg, {"model": hf_model(tmp_path / "model"), "quantized": _quantized(tmp_path)}, tmp_path / "o"
    )
    write_results(
        Path(plan[0]["results_dir"]) / "inv1" / "hellaswag" / "artifacts" / "results.yml", {"hellaswag": 0.80}
    )
    write_results(
        Path(plan[0]["results_dir"]) / "inv1" / "adlr_mmlu" / "artifacts" / "results.yml", {"adlr_mmlu": 0.70}
    )
    write_results(Path(plan[1]["results_dir"]) / "i" / "results.yml", {"hellaswag": 0.79, "adlr_mmlu": 0.695})
    write_results(Path(plan[2]["results_dir"]) / "i" / "results.yml", {"hellaswag": 0.70, "adlr_mmlu": 0.69})
    summary = ev.summarize(plan, tolerance=0.02)
    assert summary["models"][0]["metrics"] == {"hellaswag": {"acc": 0.80}, "adlr_mmlu": {"acc": 0.70}}
    assert [m["baseline"] for m in summary["models"]] == [None, "model", "model"]
    assert summary["passed"] is False
    failed = [(c["model"], c["task"]) for c in summary["checks"] if not c["passed"]]
    assert failed == [("mamba_moe_nvfp4_conservative", "hellaswag")]
    assert len(summary["checks"]) == 4


def test_parse_groups_and_named_scores(tmp_path):
    path = tmp_path / "results.yml"
    doc = {
        "results": {
            "tasks": {"t": {"metrics": {"pass@1": {"scores": {"micro": {"value": 0.5}, "macro": {"value": 0.4}}}}}},
            "groups": {"g": {"metrics": {"acc": {"scores": {"acc": {"value": 1}}}}}},
        }
    }
    path.write_text(yaml.safe_dump(doc))
    assert parse_results_yml(path) == {"t": {"pass@1/micro": 0.5, "pass@1/macro": 0.4}, "g": {"acc": 1.0}}


def test_run_writes_summary_and_show_renders_it(tmp_path, monkeypatch):
    cfg = _eval_cfg(tmp_path)
    out = tmp_path / "out"

    def fake_launch(plan, poll_seconds):
        for entry in plan:
            assert Path(entry["config_path"]).is_file()
            write_results(Path(entry["results_dir"]) / "x" / "results.yml", {"hellaswag": 0.81, "openbookqa": 0.5})

    monkeypatch.setattr(ev, "_launch", fake_launch)
    meta = ev.run(cfg, {"model": hf_model(tmp_path / "model")}, out)
    assert meta["scores"] == {"model": {"hellaswag": 0.81, "openbookqa": 0.5}} and meta["passed"] is True
    results = read_results(out)
    assert results["models"][0]["name"] == "sft-model:v1" and (out / RESULTS_FILE).is_file()
    text = show_results(out)
    assert "0.8100" in text and text.splitlines()[0].split() == ["task", "(metric)", "model"]
    assert json.loads(show_results(out, "json"))["models"] == [
        {"name": "sft-model:v1", "stage": "unknown", "metrics": {"hellaswag": 0.81, "openbookqa": 0.5}}
    ]
    monkeypatch.setattr(ev, "_launch", lambda plan, poll_seconds: None)
    with pytest.raises(RuntimeError, match="no results"):
        ev.run(cfg, {"model": hf_model(tmp_path / "model")}, tmp_path / "empty")


def test_earlier_stages_are_evaluated_first_and_gated_against_each_other(tmp_path, monkeypatch):
    cfg = _eval_cfg(tmp_path)
    inputs = {
        "pretrain_model": hf_model(tmp_path / "p", "pretrain-model"),
        "sft_model": hf_model(tmp_path / "s", "sft-model"),
        "model": hf_model(tmp_path / "r", "rl-model"),
    }
    scores = {"pretrain": 0.30, "sft": 0.60, "model": 0.50}

    def fake_launch(plan, poll_seconds):
        for entry in plan:
            write_results(Path(entry["results_dir"]) / "x" / "results.yml", {"hellaswag": scores[entry["label"]]})

    monkeypatch.setattr(ev, "_launch", fake_launch)
    with pytest.raises(UserError, match="eval gate failed.*model vs sft hellaswag acc -0.1000"):
        ev.run(cfg, inputs, tmp_path / "out")
    results = read_results(tmp_path / "out")
    assert [(m["label"], m["baseline"]) for m in results["models"]] == [
        ("pretrain", None),
        ("sft", None),  # the pretrained model is a reference column, never a baseline
        ("model", "sft"),
    ]


def test_show_rejects_dirs_without_results(tmp_path):
    write_results(tmp_path / "raw" / "a" / "artifacts" / "results.yml", {"ifeval": 0.6})
    with pytest.raises(UserError, match="no results.json"):
        show_results(tmp_path / "raw")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / RESULTS_FILE).write_text('{"format": "nemo-evaluator"}')
    with pytest.raises(UserError, match="not a nemotron-eval-results"):
        show_results(tmp_path / "other")
    with pytest.raises(UserError, match="does not exist"):
        show_results(tmp_path / "missing")


def test_user_errors(tmp_path):
    cfg = _eval_cfg(tmp_path, **{"deployment.type": "hf"})
    with pytest.raises(UserError, match="deployment.type"):
        ev.build_eval_plan(cfg, {"model": hf_model(tmp_path / "m")}, tmp_path / "o")
    with pytest.raises(UserError, match="Hugging Face export"):
        ev.build_eval_plan(cfg, {"model": artifact("m", "model", tmp_path / "void")}, tmp_path / "o")


def test_serving_follows_the_evaluators_super_example(tmp_path):
    """Defect 6: tokenizer for log-likelihood tasks, pinned vLLM image, Mamba cache / FP8 flags per precision."""
    from nemotron.upstream.pins import VLLM_EVAL_IMAGE, container

    cfg = _eval_cfg(tmp_path, **{"launcher.account": "acct"})
    plan = ev.build_eval_plan(
        cfg, {"model": hf_model(tmp_path / "model"), "quantized": _quantized(tmp_path)}, tmp_path / "o"
    )
    by_label = {e["label"]: e["config"] for e in plan}
    for label, conf in by_label.items():
        assert tree_problems(conf, EVALUATOR["config"]) == [], label
        dep, params = conf["deployment"], conf["evaluation"]["nemo_evaluator_config"]["config"]["params"]
        assert dep["image"] == VLLM_EVAL_IMAGE and container(dep["image"]).pin("vllm").version == "0.15.1"
        assert params["extra"] == {"tokenizer": ev.CHECKPOINT_MOUNT, "tokenizer_backend": "huggingface"}
        assert conf["execution"]["mounts"]["evaluation"] == {dep["checkpoint_path"]: ev.CHECKPOINT_MOUNT}
        assert conf["execution"]["hostname"] == "login" and conf["execution"]["account"] == "acct"
        forms = {form.split(":", 1)[0] for form in EVALUATOR["env_var_forms"]}
        assert all(v.split(":", 1)[0] in forms for v in dep["env_vars"].values())
    assert "--mamba_ssm_cache_dtype float32" in by_label["model"]["deployment"]["extra_args"]
    assert "--kv-cache-dtype" not in by_label["model"]["deployment"]["extra_args"]
    for label in ("mamba_moe_fp8_conservative", "mamba_moe_nvfp4_conservative"):
        args = by_label[label]["deployment"]["extra_args"]
        assert "--mamba_ssm_cache_dtype float16" in args and "--kv-cache-dtype fp8" in args
    assert "VLLM_USE_FLASHINFER_MOE_FP4" in by_label["mamba_moe_nvfp4_conservative"]["deployment"]["env_vars"]
    assert "VLLM_USE_FLASHINFER_MOE_FP4" not in by_label["mamba_moe_fp8_conservative"]["deployment"]["env_vars"]


def test_no_docker_execution_and_no_unpinned_image(tmp_path):
    cfg = _eval_cfg(tmp_path)
    (entry,) = ev.build_eval_plan(cfg, {"model": hf_model(tmp_path / "model")}, tmp_path / "o")
    assert {"execution": "local"} not in entry["config"]["defaults"]
    assert "slurm/default" in EVALUATOR["defaults_groups"]["execution"]
    with pytest.raises(UserError, match="not pinned"):
        ev.build_eval_plan(
            _eval_cfg(tmp_path, **{"deployment.image": "vllm/vllm-openai:latest"}),
            {"model": hf_model(tmp_path / "m")},
            tmp_path / "o",
        )
    with pytest.raises(UserError, match="launcher.hostname"):
        ev.build_eval_plan(
            resolved_config("eval", "default", tmp_path), {"model": hf_model(tmp_path / "m")}, tmp_path / "o"
        )
