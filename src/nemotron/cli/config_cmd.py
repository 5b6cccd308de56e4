"""``nemotron super3 config ls|show|validate|cp`` — torchtune's ``tune ls/cat/validate/cp`` for our stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nemotron.cli.help import new_app

app = new_app()

StageArg = Annotated[str, typer.Argument(help="Stage: pretrain, sft, rl.rlvr, data_prep.pretrain, quantize, eval ...")]
ConfigOpt = Annotated[str | None, typer.Option("-c", "--config", help="Config name or YAML path.")]
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("ls")
def ls() -> None:
    """List every stage with its named configs."""
    from rich.table import Table

    from nemotron.config.loader import available_configs
    from nemotron.pipeline.stages import STAGES

    table = Table("stage", "command", "configs", "inputs -> output", box=None, header_style="bold")
    for stage in STAGES:
        ins = ", ".join(f"{p.slot}:{p.kind}{'?' if p.optional else ''}" for p in stage.inputs) or "raw files"
        table.add_row(
            stage.name,
            f"super3 {stage.display}",
            ", ".join(available_configs(stage)),
            f"{ins} -> {stage.output.kind}",
        )
    from nemotron.console import make_console

    make_console().print(table)


def _resolve(stage_name: str, config: str | None, args: list[str]):
    from nemotron.config.loader import load_stage_config
    from nemotron.config.overrides import parse_overrides
    from nemotron.pipeline.stages import get_stage

    return load_stage_config(get_stage(stage_name), config, cli_overrides=parse_overrides(args))


@app.command("show", context_settings=EXTRA)
def show(ctx: typer.Context, stage: StageArg, config: ConfigOpt = None) -> None:
    """Print the fully resolved config (YAML) of a stage, with key=value overrides applied."""
    import yaml

    resolved = _resolve(stage, config, list(ctx.args))
    typer.echo(f"# {resolved.stage.name} config '{resolved.name}' (hash {resolved.config_hash[:12]})")
    typer.echo(yaml.safe_dump(resolved.data, sort_keys=False), nl=False)


@app.command("validate", context_settings=EXTRA)
def validate(ctx: typer.Context, stage: StageArg, config: ConfigOpt = None) -> None:
    """Validate a config (schema, parallel layout) without submitting anything; exit 2 when invalid."""
    resolved = _resolve(stage, config, list(ctx.args))
    typer.echo(f"ok: {resolved.stage.name} config '{resolved.name}' is valid (hash {resolved.config_hash[:12]})")


@app.command("cp")
def cp(
    stage: StageArg,
    dest: Annotated[Path, typer.Argument(help="Where to write the copy (a .yaml file).")],
    config: ConfigOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Copy a stage config to a file you can edit and pass back with -c PATH."""
    from nemotron.config.loader import DEFAULT_NAME, find_config
    from nemotron.errors import UserError
    from nemotron.pipeline.stages import get_stage

    source = find_config(get_stage(stage), config or DEFAULT_NAME)
    if dest.exists() and not force:
        raise UserError(f"{dest} already exists", hint="pass --force to overwrite it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(source.read_text())
    typer.echo(f"copied {source} -> {dest}")
