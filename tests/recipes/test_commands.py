"""node_command: the exact container, command and environment each stage's task runs."""

from __future__ import annotations

import subprocess

import pytest

from nemotron.errors import UserError
from nemotron.node.commands import node_command
from nemotron.paths import REPO_ROOT

from .recipes_support import resolved_config

ROOT = "/code"


def _cmd(stage, config="default", **overrides):
    cfg = resolved_config(stage, config, **overrides)
    return cfg, node_command(stage, cfg, code_root=ROOT)


def test_multi_node_pretrain_is_one_torchrun_per_node(tmp_path):
    cfg, cmd = _cmd("pretrain")
    container, argv, env = cmd
    assert container == "nvcr.io/nvidia/nemo:26.04" and cmd.launcher == "torchrun"
    assert argv[:3] == ["torchrun", "--nnodes=8", "--nproc-per-node=8"]
    assert "--rdzv-endpoint=${MASTER_ADDR}:${MASTER_PORT}" in argv and "--rdzv-backend=c10d" in argv
    assert argv[-3:] == ["/code/recipes/super3/pretrain.py", "--config", f"{cfg['job']['dir']}/train.yaml"]
    assert env["PYTHONUNBUFFERED"] == "1" and env["TORCH_NCCL_AVOID_RECORD_STREAMS"] == "1"
    assert cmd.ntasks_per_node == 1 and any("MASTER_ADDR" in line for line in cmd.setup)
    assert cmd.setup[0].startswith("python -m nemotron.node.preflight --stage pretrain --config ")
    script = tmp_path / "task.sh"
    script.write_text(cmd.shell())
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "${MASTER_ADDR}:${MASTER_PORT}" in cmd.shell()  # left for the node's shell to expand


@pytest.mark.parametrize(
    ("stage", "config", "nodes"), [("sft", "default", 8), ("sft", "lora", 4), ("quantize", "default", 1)]
)
def test_torchrun_stages(stage, config, nodes):
    _, cmd = _cmd(stage, config)
    assert cmd.argv[1] == f"--nnodes={nodes}" and cmd.argv[2] == "--nproc-per-node=8"
    assert cmd.argv[-3].endswith(f"recipes/super3/{stage}.py")
    preflight = f"python -m nemotron.node.preflight --stage {stage} --config {cmd.argv[-1]}"
    assert cmd.setup[0] == preflight, "the node preflight runs first, once per node, before torchrun"
    if nodes == 1:
        assert "--standalone" in cmd.argv and cmd.setup == (preflight,)


@pytest.mark.parametrize("sub", ["rlvr", "swe1", "swe2", "rlhf"])
def test_rl_runs_under_the_ray_launcher(sub):
    cfg, cmd = _cmd(f"rl.{sub}")
    assert cmd.launcher == "ray" and cmd.container.startswith("nvcr.io/nvidia/nemo-rl:v0.5.0.nemotron_3_super")
    assert cmd.argv[:2] == ("bash", "/code/recipes/super3/megatron/ray_launch.sh")
    assert cmd.argv[2:4] == ("python", "/code/recipes/super3/rl.py")
    assert cmd.env["RAY_GPUS_PER_NODE"] == "8" and cmd.env["NRL_VLLM_USE_V1"] == "1"
    assert cmd.setup == (f"python -m nemotron.node.preflight --stage rl.{sub} --config {cmd.argv[-1]}",)
    grpo, convert = cmd.detail
    assert grpo[:3] == ("uv", "run", "python") and grpo[-2:] == (
        "--config",
        f"{cfg['job']['output_dir']}/grpo_config.yaml",
    )
    assert "convert_megatron_to_hf.py" in convert[5]


def test_eval_runs_its_entry_once_and_shows_the_launcher_call():
    cfg, cmd = _cmd("eval")
    assert cmd.launcher == "python" and cmd.argv[:2] == ("python", "/code/recipes/super3/eval.py")
    assert cmd.setup == (f"python -m nemotron.node.preflight --stage eval --config {cmd.argv[-1]}",)
    (launcher,) = cmd.detail
    assert launcher == ("nemo-evaluator-launcher", "run", "--config", f"{cfg['job']['output_dir']}/launcher/model.yaml")


def test_tiny_and_data_prep_are_plain_python_without_container():
    _, cmd = _cmd("pretrain", "tiny")
    assert cmd.launcher == "python" and cmd.container is None and cmd.detail == ()
    assert cmd.argv == ("python", "/code/recipes/super3/pretrain.py", "--config", cmd.argv[-1])
    assert cmd.setup == (), "no container to check: the tiny backend runs no preflight"
    cfg = resolved_config("rl.rlvr", "tiny")
    assert node_command("rl.rlvr", cfg).argv[1] == str(REPO_ROOT / "recipes" / "super3" / "rl.py")


def test_explicit_train_yaml_and_errors():
    cfg = resolved_config("pretrain", "long_context")
    cmd = node_command("pretrain", cfg, train_yaml="/jobs/x/train.yaml", code_root=ROOT)
    assert cmd.argv[1] == "--nnodes=16" and cmd.argv[-1] == "/jobs/x/train.yaml"
    quoted = node_command("pretrain", cfg, train_yaml="/my jobs/train.yaml", code_root=ROOT).shell()
    assert "'/my jobs/train.yaml'" in quoted
    cfg["resources"]["gpus_per_node"] = 0
    with pytest.raises(UserError, match="needs GPUs"):
        node_command("pretrain", cfg)
    del cfg["job"]
    with pytest.raises(UserError, match="job.dir"):
        node_command("pretrain", cfg)
