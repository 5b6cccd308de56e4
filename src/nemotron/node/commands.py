"""What a stage's task runs on the nodes: container, command line and environment.

The execution layer submits exactly this, and the dry-run plan prints it, so the two never drift:
- ``python``   data prep and every tiny (CPU) stage: one process;
- ``torchrun`` megatron pretrain / SFT / quantize: one torchrun per node, ``gpus_per_node`` workers each,
  rendezvous on the first node of the allocation;
- ``ray``      megatron RL: ``megatron/ray_launch.sh`` on every node starts the Ray head (node 0) or a
  worker, then the head runs the RL entry script, which drives NeMo-RL's GRPO;
- eval (megatron) runs its entry script once, which calls ``nemo-evaluator-launcher``.
``detail`` lists the library commands the entry script runs inside (NeMo-RL, the evaluator launcher).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.errors import UserError
from nemotron.pipeline.stages import Stage, get_stage

BASE_ENV = {"PYTHONUNBUFFERED": "1"}
# Megatron-Bridge's published Slurm scripts (examples/models/nemotron_3/super/slurm_*.sh) set these.
TORCHRUN_ENV = {"TORCH_NCCL_AVOID_RECORD_STREAMS": "1", "NCCL_NVLS_ENABLE": "0"}
# NeMo-RL settings of the published Super3 RL configs (run.env.env_vars), without download locations.
RAY_ENV = {
    "NRL_WG_USE_RAY_REF": "1",
    "NRL_VLLM_USE_V1": "1",
    "NRL_IGNORE_VERSION_MISMATCH": "1",
    "NRL_FORCE_REBUILD_VENVS": "false",
    "VLLM_ATTENTION_BACKEND": "FLASH_ATTN",
    "VLLM_DEEP_GEMM_WARMUP": "skip",
    "RAY_DEDUP_LOGS": "1",
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    "OMP_NUM_THREADS": "16",
}
RDZV_PORT = 29500
MASTER_SETUP = (
    'export MASTER_ADDR="${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}"',
    f'export MASTER_PORT="${{MASTER_PORT:-{RDZV_PORT}}}"',
)
_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./${}-]+")


def _word(arg: str) -> str:
    """Shell-quote ``arg`` but leave ``${VAR}`` references expandable."""
    return arg if _BARE.fullmatch(arg) else shlex.quote(arg)


@dataclass(frozen=True)
class NodeCommand:
    """One stage task. Unpacks as ``container, argv, env``."""

    container: str | None
    argv: tuple[str, ...]
    env: dict[str, str]
    launcher: str
    ntasks_per_node: int = 1
    setup: tuple[str, ...] = ()
    detail: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Any]:
        yield self.container
        yield list(self.argv)
        yield dict(self.env)

    def shell(self) -> str:
        """The task as shell lines (setup first); ``${VAR}`` references are expanded on the node."""
        return "\n".join([*self.setup, " ".join(_word(a) for a in self.argv)])


def _resources(train_cfg: dict[str, Any]) -> tuple[int, int]:
    res = train_cfg.get("resources") or {}
    return int(res.get("nodes") or 1), int(res.get("gpus_per_node") or 0)


def _train_yaml(train_cfg: dict[str, Any], train_yaml: str | Path | None) -> str:
    if train_yaml is not None:
        return str(train_yaml)
    job = train_cfg.get("job") or {}
    if not job.get("dir"):
        raise UserError("train config has no job.dir", hint="node commands are built for a prepared job")
    return str(Path(job["dir"]) / "train.yaml")


def _container(stage: Stage, train_cfg: dict[str, Any]) -> str | None:
    res = train_cfg.get("resources") or {}
    if res.get("container"):
        return str(res["container"])
    return stage.container if train_cfg.get("backend") == "megatron" else None


def has_preflight(stage: Stage) -> bool:
    """Megatron-backend stages (not data prep) run the node preflight first."""
    from nemotron.node.preflight import STAGE_LIBRARIES, stage_root

    return stage_root(stage.name) in STAGE_LIBRARIES


def preflight_line(stage: Stage, train_yaml: str, python: str = "python") -> str:
    """The node preflight (``nemotron.node.preflight``): once per node, in the container, before the fan-out."""
    argv = (python, "-m", "nemotron.node.preflight", "--stage", stage.name, "--config", train_yaml)
    return " ".join(_word(a) for a in argv)


def torchrun_argv(nodes: int, gpus: int, script: str, train_yaml: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(setup lines, argv)`` of a torchrun with ``gpus`` workers on each of ``nodes`` nodes."""
    head = ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={gpus}"]
    if nodes == 1:
        return (), (*head, "--standalone", script, "--config", train_yaml)
    rdzv = ["--rdzv-backend=c10d", "--rdzv-endpoint=${MASTER_ADDR}:${MASTER_PORT}", "--rdzv-id=${SLURM_JOB_ID}"]
    return MASTER_SETUP, (*head, *rdzv, script, "--config", train_yaml)


def _inner_commands(stage: Stage, train_cfg: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    """The library command lines the megatron entry script runs (RL, eval), for the dry-run."""
    if train_cfg.get("backend") != "megatron" or stage.script not in ("rl.py", "eval.py"):
        return ()
    from nemotron.paths import RECIPES_DIR

    if str(RECIPES_DIR) not in sys.path:
        sys.path.insert(0, str(RECIPES_DIR))
    job = train_cfg.get("job") or {}
    output_dir = Path(job.get("output_dir") or "<output_dir>")
    if stage.script == "rl.py":
        from super3.megatron.rl import inner_commands
    else:
        from super3.megatron.eval import inner_commands
    return tuple(tuple(cmd) for cmd in inner_commands(train_cfg, output_dir))


def node_command(
    stage: str | Stage,
    train_cfg: dict[str, Any],
    train_yaml: str | Path | None = None,
    code_root: str | Path | None = None,
    python: str = "python",
) -> NodeCommand:
    """The container, command and environment of ``stage``'s task for this resolved config.

    ``code_root`` is where the checkout (recipes/, src/) lives on the node; default: this checkout.
    ``train_yaml`` defaults to ``<job.dir>/train.yaml``; ``python`` is the node's interpreter (the
    container's ``python`` by default).
    """
    from nemotron.paths import REPO_ROOT

    stage = stage if isinstance(stage, Stage) else get_stage(stage)
    root = Path(code_root) if code_root is not None else REPO_ROOT
    script = str(root / "recipes" / "super3" / stage.script)
    config = _train_yaml(train_cfg, train_yaml)
    container = _container(stage, train_cfg)
    nodes, gpus = _resources(train_cfg)
    tiny = train_cfg.get("backend") != "megatron"
    if tiny or stage.launcher == "python":
        return NodeCommand(
            container=container,
            argv=(python, script, "--config", config),
            env=dict(BASE_ENV),
            launcher="python",
            # a megatron stage run by python (eval) checks its container first too; data prep and tiny do not
            setup=(preflight_line(stage, config, python),) if not tiny and has_preflight(stage) else (),
            detail=_inner_commands(stage, train_cfg),
        )
    if stage.launcher == "torchrun":
        if gpus < 1:
            raise UserError(f"stage '{stage.display}' needs GPUs but resources.gpus_per_node is 0")
        setup, argv = torchrun_argv(nodes, gpus, script, config)
        setup = (preflight_line(stage, config, python), *setup)
        return NodeCommand(container, argv, {**BASE_ENV, **TORCHRUN_ENV}, "torchrun", 1, setup)
    if stage.launcher == "ray":
        launch = str(root / "recipes" / "super3" / "megatron" / "ray_launch.sh")
        env = {**BASE_ENV, **RAY_ENV, "RAY_GPUS_PER_NODE": str(gpus)}
        argv = ("bash", launch, python, script, "--config", config)
        setup = (preflight_line(stage, config, python),)
        return NodeCommand(container, argv, env, "ray", 1, setup, _inner_commands(stage, train_cfg))
    raise UserError(f"stage '{stage.display}' has an unknown launcher '{stage.launcher}'")
