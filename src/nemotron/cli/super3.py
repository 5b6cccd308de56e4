"""``nemotron super3 ...``: one command per stage, generated from the stage registry.

Every stage command takes the same options; stage-specific behaviour lives in configs and in the
stage registry, never in a copied command function.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nemotron.cli.help import new_app
from nemotron.pipeline.stages import STAGES, Stage

RUN_PANEL = "Execution"
ConfigOpt = Annotated[
    str | None,
    typer.Option("-c", "--config", help="Config name (see `config ls`) or path to a YAML file.", show_default=False),
]
RunOpt = Annotated[
    str | None,
    typer.Option(
        "-r",
        "--run",
        help="Submit with this env.toml profile and wait, streaming logs.",
        rich_help_panel=RUN_PANEL,
    ),
]
BatchOpt = Annotated[
    str | None,
    typer.Option(
        "-b",
        "--batch",
        help="Submit with this env.toml profile and return at once.",
        rich_help_panel=RUN_PANEL,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "-d",
        "--dry-run",
        help="Print the plan (config diff, artifacts, resources; the sbatch script with a Slurm profile, "
        "else the local command) and submit nothing.",
        rich_help_panel=RUN_PANEL,
    ),
]
PartitionOpt = Annotated[
    str | None, typer.Option("--partition", help="Slurm partition (over the profile's).", rich_help_panel=RUN_PANEL)
]
AccountOpt = Annotated[
    str | None, typer.Option("--account", help="Slurm account (over the profile's).", rich_help_panel=RUN_PANEL)
]
QosOpt = Annotated[str | None, typer.Option("--qos", help="Slurm QOS (over the profile's).", rich_help_panel=RUN_PANEL)]
TimeOpt = Annotated[
    str | None,
    typer.Option("--time", help="Time limit, e.g. 04:00:00 (over profile and config).", rich_help_panel=RUN_PANEL),
]
NodesOpt = Annotated[
    int | None, typer.Option("--nodes", help="Nodes (over profile and config).", rich_help_panel=RUN_PANEL)
]


def cluster_flags(**flags: object) -> dict[str, object]:
    """The cluster options given on the command line (None = not given)."""
    return {k: v for k, v in flags.items() if v is not None}


OVERRIDES_EPILOG = (
    "Overrides: key=value anywhere, e.g. train.train_iters=100 run.data=pretrain-data:v3. "
    "Arguments after -- go to the node script unchanged."
)
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


def _stage_command(stage: Stage):
    """A Typer callback for ``stage`` (a closure, so every stage shares one implementation)."""

    def command(
        ctx: typer.Context,
        config: ConfigOpt = None,
        run: RunOpt = None,
        batch: BatchOpt = None,
        dry_run: DryRunOpt = False,
        partition: PartitionOpt = None,
        account: AccountOpt = None,
        qos: QosOpt = None,
        time: TimeOpt = None,
        nodes: NodesOpt = None,
    ) -> None:
        from nemotron.cli.main import ARGV, PASSTHROUGH
        from nemotron.launch.stage import launch_stage

        code = launch_stage(
            stage,
            config=config,
            run_profile=run,
            batch_profile=batch,
            dry_run=dry_run,
            args=list(ctx.args),
            passthrough=list(PASSTHROUGH),
            argv=list(ARGV),
            cluster=cluster_flags(partition=partition, account=account, qos=qos, time=time, nodes=nodes),
        )
        raise typer.Exit(code)

    command.__doc__ = stage.help
    return command


def _eval_command(stage: Stage):
    """``eval`` additionally shows a published result with ``--show``."""
    base = _stage_command(stage)

    def command(
        ctx: typer.Context,
        config: ConfigOpt = None,
        run: RunOpt = None,
        batch: BatchOpt = None,
        dry_run: DryRunOpt = False,
        partition: PartitionOpt = None,
        account: AccountOpt = None,
        qos: QosOpt = None,
        time: TimeOpt = None,
        nodes: NodesOpt = None,
        show: Annotated[
            str | None,
            typer.Option("--show", help="Print the results of an eval-results artifact (NAME[:VER])."),
        ] = None,
        fmt: Annotated[
            str,
            typer.Option("--format", help="With --show: table (for people) or json (for scripts)."),
        ] = "table",
    ) -> None:
        if show:
            from nemotron.launch.results import show_eval_results

            show_eval_results(show, fmt)
            raise typer.Exit(0)
        base(
            ctx, config=config, run=run, batch=batch, dry_run=dry_run,
            partition=partition, account=account, qos=qos, time=time, nodes=nodes,
        )  # fmt: skip

    command.__doc__ = stage.help
    return command


def _convert_command(stage: Stage):
    """``model import|export`` additionally take ``--verify`` (Megatron-Bridge's own conversion checks)."""
    base = _stage_command(stage)

    def command(
        ctx: typer.Context,
        config: ConfigOpt = None,
        run: RunOpt = None,
        batch: BatchOpt = None,
        dry_run: DryRunOpt = False,
        verify: Annotated[
            bool | None,
            typer.Option(
                "--verify/--no-verify",
                help="Check the converted model (weight roundtrip + HF-vs-Megatron outputs) before publishing; "
                "the outcome is recorded in the artifact metadata. Same as verify.enabled=true.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        if verify is not None:
            ctx.args.append(f"verify.enabled={str(verify).lower()}")
        base(ctx, config=config, run=run, batch=batch, dry_run=dry_run)

    command.__doc__ = stage.help
    return command


FACTORIES = {"eval": _eval_command, "model.import": _convert_command, "model.export": _convert_command}


def _group(parent: typer.Typer, groups: dict[tuple[str, ...], typer.Typer], path: tuple[str, ...]) -> typer.Typer:
    """The Typer sub-app for a command path prefix (``("data", "prep")``), created on first use."""
    if not path:
        return parent
    if path not in groups:
        owner = _group(parent, groups, path[:-1])
        sub = new_app(help=GROUP_HELP.get(path, ""))
        owner.add_typer(sub, name=path[-1], rich_help_panel=panel_of(path) if len(path) == 1 else None)
        groups[path] = sub
    return groups[path]


GROUP_HELP = {
    ("data",): "Data preparation: raw text, chats and prompts into the artifacts training reads.",
    ("data", "prep"): "Prepare pretraining, SFT and RL data and publish them as artifacts.",
    ("model",): "Convert checkpoints: import (Hugging Face -> Megatron), export (Megatron -> Hugging Face).",
    ("rl",): "Reinforcement learning stages (GRPO with NeMo-RL): rlvr -> swe1 -> swe2 -> rlhf.",
}

PANELS = {"data": "Data", "pretrain": "Training", "sft": "Training", "rl": "Training"}
PANELS |= {"model": "Checkpoints", "quantize": "Quantization", "eval": "Evaluation"}
"""``--help`` panel of each top-level stage command; a stage not listed here shows under "Stages"."""


def panel_of(command: tuple[str, ...]) -> str:
    return PANELS.get(command[0], "Stages")


def stage_order(stages: tuple[Stage, ...] = STAGES) -> str:
    """The stages in recipe order, runs of one group folded: ``data prep {pretrain, sft, rl} -> pretrain -> ...``."""
    runs: list[tuple[tuple[str, ...], list[str]]] = []
    for stage in stages:
        prefix, leaf = stage.command[:-1], stage.command[-1]
        if runs and prefix and runs[-1][0] == prefix:
            runs[-1][1].append(leaf)
        else:
            runs.append((prefix, [leaf]))
    parts = []
    for prefix, leaves in runs:
        head = " ".join(prefix) + " " if prefix else ""
        parts.append(head + (leaves[0] if len(leaves) == 1 else "{" + ", ".join(leaves) + "}"))
    return " -> ".join(parts)


def super3_help() -> str:
    return (
        "Nemotron 3 Super, stage by stage: each stage publishes an artifact that the next one reads.\n\n"
        f"Stage order: {stage_order()}. `pipe` runs them all as one experiment and skips what exists.\n\n"
        "Configs: `nemotron super3 config ls` lists every stage's named configs (pick one with -c NAME); "
        "`nemotron super3 config show STAGE -c NAME` prints it resolved; `--dry-run` on any stage shows the plan."
    )


def build_app() -> typer.Typer:
    from nemotron.cli import config_cmd, pipe

    app = new_app(help=super3_help(), epilog=OVERRIDES_EPILOG)
    groups: dict[tuple[str, ...], typer.Typer] = {}
    for stage in STAGES:
        owner = _group(app, groups, stage.command[:-1])
        factory = FACTORIES.get(stage.name, _stage_command)
        owner.command(
            stage.command[-1],
            context_settings=EXTRA_ARGS,
            epilog=OVERRIDES_EPILOG,
            help=stage.help,
            rich_help_panel=panel_of(stage.command) if len(stage.command) == 1 else None,
        )(factory(stage))
    app.command("pipe", context_settings=EXTRA_ARGS, epilog=OVERRIDES_EPILOG, rich_help_panel="Pipeline")(pipe.pipe)
    app.add_typer(
        config_cmd.app, name="config", help="List, show, validate and copy stage configs.", rich_help_panel="Configs"
    )
    return app
