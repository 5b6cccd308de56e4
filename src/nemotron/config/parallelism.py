"""Checks that a Megatron parallel layout can actually start on the requested GPUs.

A layout Megatron rejects only fails after the job has waited in the queue and loaded the container;
these checks run before submission and name the keys to change.
"""

from __future__ import annotations

from typing import Any

from nemotron.errors import UserError


def _fail(problem: str, fix: str) -> None:
    raise UserError(problem, hint=fix)


def _reserved_nodes(cfg: Any) -> int:
    """Nodes of an RL allocation that do not train: dedicated generation nodes and environment GPU nodes."""
    generation = getattr(getattr(cfg, "policy", None), "generation", None)
    reserved = generation.nodes if generation is not None and not generation.colocated else 0
    env = getattr(cfg, "env", None)
    reserved += getattr(env, "gpu_nodes", 0) or 0
    if reserved >= cfg.resources.nodes:
        _fail(
            f"{reserved} of the {cfg.resources.nodes} nodes are reserved for generation/environment, none train",
            "raise resources.nodes or lower policy.generation.nodes / env.gpu_nodes",
        )
    return reserved


def check_parallelism(cfg: Any) -> None:
    """Validate ``cfg.parallel`` against ``cfg.resources`` and ``cfg.model`` (megatron backend only)."""
    parallel = getattr(cfg, "parallel", None)
    model = getattr(cfg, "model", None)
    if cfg.backend != "megatron" or parallel is None:
        return
    res = cfg.resources
    world = (res.nodes - _reserved_nodes(cfg)) * res.gpus_per_node
    if world == 0:
        _fail("the megatron backend needs GPUs but resources.gpus_per_node is 0", "set resources.gpus_per_node")
    tp, pp, cp, ep, etp = (
        parallel.tensor,
        parallel.pipeline,
        parallel.context,
        parallel.expert,
        parallel.expert_tensor,
    )
    model_parallel = tp * pp * cp
    if world % model_parallel:
        _fail(
            f"TP*PP*CP = {tp}*{pp}*{cp} = {model_parallel} does not divide the {world} GPUs "
            f"({res.nodes} nodes x {res.gpus_per_node}), so TP*PP*CP*DP cannot equal nodes*GPUs",
            "change parallel.tensor/pipeline/context or resources.nodes/gpus_per_node",
        )
    dp = world // model_parallel
    if (world // pp) % (ep * etp):
        _fail(
            f"expert parallel {ep} x expert tensor {etp} does not divide the {world // pp} GPUs of a pipeline stage",
            "make parallel.expert * parallel.expert_tensor divide nodes*gpus_per_node/pipeline",
        )
    if parallel.sequence_parallel and tp == 1:
        _fail("parallel.sequence_parallel needs parallel.tensor > 1", "set parallel.sequence_parallel=false")
    if model is not None:
        if model.num_moe_experts % ep:
            _fail(
                f"model.num_moe_experts ({model.num_moe_experts}) is not divisible by parallel.expert ({ep})",
                "choose an expert parallel size that divides the number of experts",
            )
        if model.num_attention_heads % tp:
            _fail(
                f"model.num_attention_heads ({model.num_attention_heads}) is not divisible by parallel.tensor ({tp})",
                "choose a tensor parallel size that divides the attention heads",
            )
        if model.mamba_num_heads % tp or model.mamba_num_groups % tp:
            _fail(
                f"Mamba heads ({model.mamba_num_heads}) and groups ({model.mamba_num_groups}) must be divisible "
                f"by parallel.tensor ({tp})",
                "choose a tensor parallel size that divides model.mamba_num_groups",
            )
        if model.num_layers % pp:
            _fail(
                f"model.num_layers ({model.num_layers}) is not divisible by parallel.pipeline ({pp})",
                "choose a pipeline parallel size that divides the number of layers",
            )
    train = getattr(cfg, "train", None)
    if train is not None:
        if cp > 1 and train.seq_length % (2 * cp):
            _fail(
                f"train.seq_length ({train.seq_length}) must be divisible by 2*parallel.context ({2 * cp})",
                "adjust train.seq_length or parallel.context",
            )
        per_step = train.micro_batch_size * dp
        if train.global_batch_size % per_step:
            _fail(
                f"train.global_batch_size ({train.global_batch_size}) is not divisible by micro_batch_size x "
                f"data parallel ({train.micro_batch_size} x {dp} = {per_step})",
                "make global_batch_size a multiple of micro_batch_size * DP",
            )
