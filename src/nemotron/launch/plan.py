"""The dry-run plan: everything a user should check before spending hours of queue and GPUs.

What changed versus the published defaults (and which layer changed it), which artifacts go in and
come out, what is asked of the scheduler with an estimate of cost, and the exact script NeMo-Run
would submit. Nothing is submitted.
"""

from __future__ import annotations

from typing import Any

from nemotron.config.loader import ResolvedConfig
from nemotron.execution.job import PreparedJob
from nemotron.launch.inputs import InputStatus


def _short(value: Any, width: int = 48) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def config_table(resolved: ResolvedConfig):
    """The keys that differ from the published defaults, or one line saying none do."""
    from rich.table import Table

    rows = resolved.diff()
    if not rows:
        return f"[bold]Config '{resolved.name}'[/bold]: the published defaults, no key changed"
    table = Table(title=f"Config '{resolved.name}': {len(rows)} key(s) differ from default", title_justify="left")
    for column in ("key", "default", "value", "set by"):
        table.add_column(column, overflow="fold")
    for key, default, value, source in rows:
        table.add_row(key, _short(default), f"[bold]{_short(value)}[/bold]", source)
    return table


def artifacts_table(job: PreparedJob, statuses: list[InputStatus]):
    from rich.table import Table

    table = Table(title="Artifacts", title_justify="left")
    for column in ("", "slot", "reference", "resolves to"):
        table.add_column(column, overflow="fold")
    for status in statuses:
        if status.problem:
            where = f"[red]{status.problem}[/red]"
        elif status.artifact is not None:
            art = status.artifact
            where = f"{art.name}:v{art.version} ({art.kind}) {art.path}"
        else:
            where = "[dim]not used[/dim]"
        table.add_row("in", status.slot, status.ref or "-", where)
    out = job.train_cfg["output"]
    table.add_row("out", job.stage.output.slot, f"{out['name']} ({job.stage.output.kind})", str(job.output_dir))
    return table


def resources_table(job: PreparedJob, estimates: list[tuple[str, str]]):
    from rich.table import Table

    res = job.resources
    table = Table(title="Resources", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("nodes x GPUs", f"{res.get('nodes')} x {res.get('gpus_per_node')}")
    table.add_row("time limit", str(res.get("time")))
    table.add_row("container", str(res.get("container") or "none (the node's Python)"))
    for label, value in estimates:
        table.add_row(label, value)
    return table


def schedule_warnings(data: dict[str, Any]) -> list[str]:
    """Learning-rate schedules that cannot do what the user probably meant (training never leaves warmup)."""
    train, opt = data.get("train") or {}, data.get("optimizer") or {}
    iters, warmup = train.get("train_iters"), opt.get("warmup_iters") or 0
    if not iters or not warmup or warmup < iters:
        return []
    return [
        f"optimizer.warmup_iters={warmup} >= train.train_iters={iters}: the learning rate never leaves warmup "
        f"(set optimizer.warmup_iters to a fraction of the run, e.g. optimizer.warmup_iters={max(1, iters // 10)})"
    ]


def print_plan(resolved: ResolvedConfig, job: PreparedJob, profile: Any, statuses: list[InputStatus]) -> None:
    """Render the plan for one stage on stdout."""
    from rich.panel import Panel
    from rich.syntax import Syntax

    from nemotron.console import make_console
    from nemotron.launch.estimates import estimates_for
    from nemotron.launch.preview import execution_preview

    console = make_console()
    console.print(
        Panel.fit(
            f"[bold]nemotron super3 {job.stage.display}[/bold]  config [cyan]{resolved.name}[/cyan]  "
            f"profile [cyan]{profile.name}[/cyan]\nexperiment {job.experiment_id}  "
            f"config hash {resolved.config_hash[:12]}",
            title="Dry run — nothing is submitted",
        )
    )
    console.print(config_table(resolved))
    for warning in schedule_warnings(resolved.data):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    console.print(artifacts_table(job, statuses))
    console.print(resources_table(job, estimates_for(resolved.stage, resolved.data)))
    title, script, _lexer = execution_preview(job, profile)
    console.print(f"[bold]Execution[/bold]: {profile.describe()}")
    # Not in a box and not re-wrapped: the terminal wraps long lines itself, so a copied command keeps
    # its `\` continuations and runs as shown.
    console.rule(f"[bold]{title}[/bold]", align="left")
    console.print(script.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
    console.rule()
    library = job.job_dir / "library.yaml"
    if library.is_file():
        console.print(
            Panel(Syntax(library.read_text(), "yaml", word_wrap=True), title=str(library), title_align="left")
        )
    console.print(f"job files: {job.job_yaml}  {job.train_yaml}" + (f"  {library}" if library.is_file() else ""))
