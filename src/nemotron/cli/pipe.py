"""``nemotron super3 pipe``: the whole recipe as one experiment of dependent jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from nemotron.cli.super3 import (
    AccountOpt,
    BatchOpt,
    DryRunOpt,
    NodesOpt,
    PartitionOpt,
    QosOpt,
    RunOpt,
    TimeOpt,
    cluster_flags,
)

PipeConfigOpt = Annotated[
    str | None,
    typer.Option(
        "-c",
        "--config",
        help="Pipe config (configs/super3/pipe: default, finetune, tiny, finetune_tiny) or a YAML path.",
        show_default=False,
    ),
]


def pipe(
    ctx: typer.Context,
    config: PipeConfigOpt = None,
    run: RunOpt = None,
    batch: BatchOpt = None,
    dry_run: DryRunOpt = False,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Rerun this step (id or stage) and every later one; reuse the outputs before it."),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option("--only", help="Run just this stage, fed by the existing outputs of the stages before it."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Run every stage even if its output exists (or an identical pipe is running)."),
    ] = False,
    partition: PartitionOpt = None,
    account: AccountOpt = None,
    qos: QosOpt = None,
    time: TimeOpt = None,
    nodes: NodesOpt = None,
) -> None:
    """Data prep -> pretrain -> SFT -> RL -> quantize -> eval as one experiment (afterok chain).

    Stages whose output already exists for the same resolved config are skipped. Overrides are
    prefixed with a step id or a stage (a stage prefix reaches all its steps):
    pretrain.phase2.train.train_iters=3 pretrain.seed=7 rl.rlvr.grpo.num_prompts_per_step=4.
    --dry-run shows the plan, the dependency graph and the total GPU-hours.
    """
    from nemotron.cli.main import ARGV, PASSTHROUGH
    from nemotron.pipeline.launch_pipe import launch_pipe

    code = launch_pipe(
        config=config,
        run_profile=run,
        batch_profile=batch,
        dry_run=dry_run,
        from_=from_,
        only=only,
        force=force,
        args=list(ctx.args),
        passthrough=list(PASSTHROUGH),
        argv=list(ARGV),
        cluster=cluster_flags(partition=partition, account=account, qos=qos, time=time, nodes=nodes),
    )
    raise typer.Exit(code)
