"""`nemotron artifacts add|ls|show|sync`: register existing data, look into the local registry, push it to W&B.

Parsing and printing only; the work happens in ``nemotron.artifacts``. Nothing heavy at import
time (``--help`` budget): the registry is imported inside each command, wandb only by ``sync``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from nemotron.cli.help import new_app
from nemotron.errors import UserError

app = new_app(
    help="Register existing data (add), inspect the local artifact registry (ls, show, fsck) and mirror it to W&B (sync).",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Registry root (default: $NEMOTRON_ARTIFACTS_ROOT, else env.toml [artifacts] root, else <NEMOTRON_HOME>/artifacts).",
        show_default=False,
    ),
]


def open_registry(root: Path | None):
    """The registry at ``root`` or the default root; the default may not exist yet (empty registry)."""
    from nemotron.artifacts.registry import Registry, default_root

    return Registry(root or default_root())


def _console():
    from nemotron.console import make_console

    return make_console()


def _short_aliases(aliases: list[str]) -> str:
    """Aliases a person reads (``latest``, custom ones); per-experiment pipe aliases are only counted."""
    plain = [a for a in aliases if not a.startswith("exp-")]
    pipes = len(aliases) - len(plain)
    return ", ".join(plain + ([f"+{pipes} pipe"] if pipes else []))


@app.command("ls")
def ls(
    kind: Annotated[str | None, typer.Argument(help="Only this kind (model, sft-data, ...).")] = None,
    all_versions: Annotated[bool, typer.Option("--all", "-a", help="Every version, not just the newest.")] = False,
    wide: Annotated[bool, typer.Option("--wide", "-w", help="Also show the producing job and the data path.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    root: RootOption = None,
) -> None:
    """List artifacts: newest version of each name (or --all), with aliases and producing stage."""
    from nemotron.artifacts.formats import ADDABLE_KINDS
    from nemotron.pipeline.stages import ARTIFACT_KINDS

    registry = open_registry(root)
    items = registry.list(kind=kind, all_versions=all_versions)
    known = ARTIFACT_KINDS | set(ADDABLE_KINDS)
    if kind and not items and kind not in known:
        raise UserError(f"unknown artifact kind '{kind}'", hint=f"kinds: {', '.join(sorted(known))}")
    if as_json:
        typer.echo(json.dumps([a.to_dict() for a in items], indent=2))
        return
    if not items:
        typer.echo(f"no artifacts{f' of kind {kind}' if kind else ''} in {registry.root}")
        return
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from nemotron.artifacts.lineage import short_time

    counts = {name: len(registry.versions(name)) for name in {a.name for a in items}}
    table = Table(title=f"artifacts in {escape(str(registry.root))}", title_justify="left", box=box.SIMPLE_HEAD)
    columns = ["ARTIFACT", *([] if all_versions else ["OF"]), "KIND", "ALIASES", "STAGE", "CREATED"]
    if wide:
        columns += ["JOB", "PATH"]
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("ARTIFACT", "KIND", "CREATED"))
    for art in items:
        row = [
            escape(f"{art.name}:v{art.version}"),
            *([] if all_versions else [str(counts[art.name])]),
            escape(art.kind),
            escape(_short_aliases(list(art.aliases))),
            escape(art.run.stage),
            short_time(art.run.created_at),
        ]
        if wide:
            row += [escape(art.run.job_id or "-"), escape(art.path)]
        table.add_row(*row)
    _console().print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:ALIAS or NAME:vN.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    root: RootOption = None,
) -> None:
    """Everything about one version: path, digest, producing run, inputs, consumers, W&B state."""
    registry = open_registry(root)
    art = registry.get(ref)
    consumers = [a.ref for a in registry.consumers(art.ref)]
    mirror = registry.mirror_state(art)
    if as_json:
        typer.echo(json.dumps({**art.to_dict(), "consumers": consumers, "wandb": mirror}, indent=2))
        return
    from rich.markup import escape

    from nemotron.artifacts.lineage import short_time

    slots = {ref_: slot for slot, ref_ in art.input_slots.items()}
    lines = [
        f"[bold cyan]{escape(art.ref)}[/] [green]({escape(art.kind)})[/]",
        f"  aliases     {escape(', '.join(art.aliases) or '-')}",
        f"  path        {escape(art.path)}" + ("" if _exists(art.path) else "  [red](missing)[/]"),
        f"  digest      {escape(art.digest or '-')}",
        f"  stage       {escape(art.run.stage)}  (config {escape(art.run.config_name or '-')})",
        f"  job         {escape(art.run.job_id or '-')}  experiment {escape(art.run.experiment or '-')}",
        f"  config hash {escape(art.run.config_hash or '-')}",
        f"  git rev     {escape(art.run.git_rev or '-')}",
        f"  created     {short_time(art.run.created_at)} on {escape(art.run.host or '?')}",
        "  inputs      " + (", ".join(f"{escape(slots.get(i, '-'))}={escape(i)}" for i in art.inputs) or "-"),
        "  consumers   " + (escape(", ".join(consumers)) or "-"),
    ]
    from nemotron.artifacts.add import is_added, reference_problem

    if is_added(art):
        problem = reference_problem(art)
        lines.append("  reference   " + (f"[red]{escape(problem)}[/]" if problem else "unchanged since added"))
    if mirror:
        state = mirror.get("state", "?")
        pending = mirror.get("pending_edges") or []
        detail = f" run {mirror.get('run_id')}" if mirror.get("run_id") else ""
        detail += f", {len(pending)} edge(s) to sync" if pending else ""
        lines.append(f"  wandb       {escape(state + detail)}")
    if art.metadata:
        lines.append("  metadata")
        lines += [f"    {escape(str(k))}: {escape(json.dumps(v))}" for k, v in sorted(art.metadata.items())]
    console = _console()
    for line in lines:
        console.print(line, highlight=False)


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="Directory (or file) to register in place; it is never copied.")],
    name: Annotated[str, typer.Option("--name", help="Artifact name; the version is NAME:vN.")],
    kind: Annotated[
        str, typer.Option("--kind", help="model, pretrain-data, sft-data, rl-data or tokenizer (format is checked).")
    ],
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="KEY=VALUE recorded with the version (repeatable).")
    ] = None,
    root: RootOption = None,
) -> None:
    """Register existing data as NAME:vN (by reference): lineage starts here; W&B mirrors it when configured."""
    from nemotron.artifacts.add import add_reference, parse_metadata
    from nemotron.artifacts.registry import Registry

    user = parse_metadata(list(metadata or []))
    registry = open_registry(root)
    env_wandb = _wandb_settings()
    if env_wandb is not None:
        from nemotron.artifacts.wandb_mirror import WandbMirror

        registry = Registry(registry.root, mirror=WandbMirror(env_wandb))
    art, created = add_reference(registry, path, name=name, kind=kind, metadata=user)
    fmt = art.metadata.get("format", "?")
    if created:
        typer.echo(f"added {art.ref} ({art.kind}, {fmt}) -> {art.path}  digest {art.digest}")
    else:
        typer.echo(f"{art.ref} already registers {art.path} unchanged ({art.kind}, {fmt})")


def _wandb_settings():
    """env.toml's [wandb] as mirror settings, or None (disabled or not configured)."""
    from nemotron.artifacts.wandb_mirror import WandbSettings
    from nemotron.env.profiles import load_env

    settings = WandbSettings.from_dict(dict(load_env().wandb or {}))
    return None if settings is None or settings.mode == "disabled" else settings


def _exists(path: str) -> bool:
    return "://" in path or Path(path).exists()


@app.command("fsck")
def fsck(
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild indexes and path claims from the version records.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Check the registry for damage (bad JSON, stale indexes, temp files); --repair rebuilds what it can."""
    from nemotron.artifacts import fsck as checker

    registry = open_registry(root)
    problems = checker.check(registry)
    for problem in problems:
        typer.echo(checker.describe(problem))
    if repair and problems:
        for line in checker.repair(registry):
            typer.echo(line)
        problems = checker.check(registry)
    if not problems:
        typer.echo(f"registry {registry.root}: ok")
        return
    left = "; ".join(checker.describe(p) for p in problems if not p.repairable or repair)
    if left:
        raise UserError(f"registry {registry.root} has problems left: {left[:300]}")
    raise UserError(f"registry {registry.root}: {len(problems)} problem(s)", hint="nemotron artifacts fsck --repair")


def sync_settings(project: str | None, entity: str | None) -> dict[str, object]:
    """The [wandb] settings sync uses: env.toml's section (what the mirror uses), under the
    ``WANDB_*`` environment variables, under the command-line flags; always online."""
    from nemotron.env.profiles import load_env

    merged: dict[str, object] = {**load_env().wandb, "mode": "online"}
    for key, flag, var in (
        ("project", project, "WANDB_PROJECT"),
        ("entity", entity, "WANDB_ENTITY"),
        ("base_url", None, "WANDB_BASE_URL"),
    ):
        value = flag or os.environ.get(var) or merged.get(key)
        if value:
            merged[key] = value
    return merged


@app.command("sync")
def sync(
    project: Annotated[
        str | None, typer.Option("--project", help="W&B project (default: $WANDB_PROJECT, else env.toml [wandb]).")
    ] = None,
    entity: Annotated[
        str | None, typer.Option("--entity", help="W&B entity (default: $WANDB_ENTITY, else env.toml [wandb]).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be done.")] = False,
    relog: Annotated[
        bool, typer.Option("--relog", help="Log offline artifacts afresh instead of uploading their runs.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Push to W&B what offline nodes could not: upload offline runs, log missing artifacts, replay use-edges."""
    from nemotron.artifacts.wandb_mirror import WandbSettings, plan_sync, run_sync

    registry = open_registry(root)
    if dry_run:
        steps = plan_sync(registry)
        for step in steps:
            typer.echo(f"{step.action:7s} {step.artifact}" + (f"  {step.detail}" if step.detail else ""))
        typer.echo(f"{len(steps)} step(s); nothing done (--dry-run)")
        return
    settings = WandbSettings.from_dict(sync_settings(project, entity))
    if settings is None:
        raise UserError("no W&B project to sync to", hint="pass --project or set [wandb] project / WANDB_PROJECT")
    done = run_sync(registry, settings, relog=relog, echo=typer.echo)
    typer.echo(f"synced {len(done)} step(s) to W&B project {settings.project}")
