"""Lineage graphs from the local registry, and their renderings (rich tree, mermaid, dot, json).

Edges point from an input to the artifact made from it. Upstream walks ``inputs`` (exact
``name:vN``, so the graph never changes after the fact); downstream walks consumers. Every node
line says where the artifact came from: ``name:vN (kind) ← stage [job id] config <hash> <time>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nemotron.artifacts.model import Artifact
from nemotron.errors import UserError

FORMATS = ("tree", "json", "mermaid", "dot")
JSON_FORMAT = 1


@dataclass
class LineageGraph:
    """A root, a direction (``up``: ancestors, ``down``: descendants), nodes and edges."""

    root: str
    direction: str
    nodes: dict[str, Artifact] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (input ref, output ref)
    missing: list[str] = field(default_factory=list)  # refs named as inputs but not in the registry

    def children(self, ref: str) -> list[str]:
        """Next nodes away from the root: inputs going up, consumers going down."""
        if self.direction == "up":
            return [src for src, dst in self.edges if dst == ref]
        return [dst for src, dst in self.edges if src == ref]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "root": self.root,
            "direction": self.direction,
            "nodes": [self.nodes[ref].to_dict() for ref in sorted(self.nodes)],
            "edges": [{"from": src, "to": dst} for src, dst in self.edges],
            "missing": list(self.missing),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageGraph:
        nodes = {}
        for item in data["nodes"]:
            art = Artifact.from_dict(item)
            nodes[art.ref] = art
        return cls(
            root=data["root"],
            direction=data["direction"],
            nodes=nodes,
            edges=[(e["from"], e["to"]) for e in data["edges"]],
            missing=list(data.get("missing", [])),
        )


def build_graph(registry: Any, ref: str, down: bool = False) -> LineageGraph:
    """The lineage of ``ref`` (any alias; resolved to its exact version) in one direction."""
    root = registry.get(ref)
    graph = LineageGraph(root=root.ref, direction="down" if down else "up")
    graph.nodes[root.ref] = root
    if down:
        everything = registry.list()
        consumers: dict[str, list[Artifact]] = {}
        for art in everything:
            for inp in art.inputs:
                consumers.setdefault(inp, []).append(art)
    stack = [root]
    while stack:
        art = stack.pop()
        if down:
            nxt = sorted(consumers.get(art.ref, []), key=lambda a: (a.name, a.version))
            for child in nxt:
                edge = (art.ref, child.ref)
                if edge not in graph.edges:
                    graph.edges.append(edge)
                if child.ref not in graph.nodes:
                    graph.nodes[child.ref] = child
                    stack.append(child)
            continue
        for inp in art.inputs:
            edge = (inp, art.ref)
            if edge not in graph.edges:
                graph.edges.append(edge)
            if inp in graph.nodes or inp in graph.missing:
                continue
            try:
                parent = registry.get(inp)
            except UserError:
                graph.missing.append(inp)
                continue
            graph.nodes[inp] = parent
            stack.append(parent)
    return graph


# -- labels -------------------------------------------------------------------------------------
def short_time(created_at: str) -> str:
    """``2026-11-23T18:25:01.123456Z`` -> ``2026-11-23 18:25:01Z``."""
    if not created_at:
        return "?"
    return created_at.replace("T", " ").split(".")[0].rstrip("Z") + "Z"


def node_label(art: Artifact) -> str:
    """``name:vN (kind) ← stage [job id] config <short hash> <time>`` (plain text)."""
    run = art.run
    config = (run.config_hash or "-")[:12]
    return f"{art.ref} ({art.kind}) ← {run.stage or '?'} [{run.job_id or '-'}] config {config} {short_time(run.created_at)}"


def render_tree(graph: LineageGraph, long: bool = False):
    """A ``rich.tree.Tree``; a node reached twice (diamond) is printed once, then referenced.

    One short line per node (``slot: name:vN ← stage``) so the tree stays readable at any width;
    ``long`` adds aliases, kind, job id, config hash and time."""
    from rich.markup import escape
    from rich.tree import Tree

    def rich_label(ref: str, slot: str | None, seen_before: bool) -> str:
        prefix = f"[dim]{escape(slot)}:[/] " if slot else ""
        if ref not in graph.nodes:
            return f"{prefix}[red]{escape(ref)} (missing from the registry)[/]"
        art = graph.nodes[ref]
        run = art.run
        if not long:
            text = f"{prefix}[bold cyan]{escape(art.ref)}[/] ← [yellow]{escape(run.stage or '?')}[/]"
            return text + (" [dim](shown above)[/]" if seen_before else "")
        aliases = f" [magenta]@{escape(','.join(art.aliases))}[/]" if art.aliases else ""
        text = (
            f"{prefix}[bold cyan]{escape(art.ref)}[/]{aliases} [green]({escape(art.kind)})[/] ← "
            f"[yellow]{escape(run.stage or '?')}[/] {escape('[' + (run.job_id or '-') + ']')} "
            f"config [blue]{escape((run.config_hash or '-')[:12])}[/] [dim]{escape(short_time(run.created_at))}[/]"
        )
        return text + (" [dim](shown above)[/]" if seen_before else "")

    def slot_of(parent: str, child: str) -> str | None:
        # Going up, the parent consumed the child: name the slot it was used for.
        holder = graph.nodes.get(parent if graph.direction == "up" else child)
        target = child if graph.direction == "up" else parent
        if holder is None:
            return None
        return next((s for s, r in holder.input_slots.items() if r == target), None)

    seen: set[str] = set()
    tree = Tree(rich_label(graph.root, None, False))
    seen.add(graph.root)

    def grow(node, ref: str, path: tuple[str, ...]) -> None:
        for child in graph.children(ref):
            repeat = child in seen
            branch = node.add(rich_label(child, slot_of(ref, child), repeat))
            if not repeat and child not in path:
                seen.add(child)
                grow(branch, child, (*path, child))

    grow(tree, graph.root, (graph.root,))
    return tree


def _ids(graph: LineageGraph) -> dict[str, str]:
    refs = sorted(set(graph.nodes) | set(graph.missing))
    return {ref: f"n{i}" for i, ref in enumerate(refs)}


def to_mermaid(graph: LineageGraph) -> str:
    """A mermaid ``flowchart`` (inputs on the left); labels are quoted and entity-escaped."""

    def esc(text: str) -> str:
        return text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

    ids = _ids(graph)
    lines = ["flowchart LR"]
    for ref, node_id in ids.items():
        if ref in graph.nodes:
            art = graph.nodes[ref]
            run = art.run
            label = (
                f"{esc(art.ref)} ({esc(art.kind)})<br/>{esc(run.stage or '?')} [{esc(run.job_id or '-')}]"
                f"<br/>config {esc((run.config_hash or '-')[:12])} {esc(short_time(run.created_at))}"
            )
        else:
            label = f"{esc(ref)} (missing)"
        lines.append(f'    {node_id}["{label}"]')
    for src, dst in graph.edges:
        lines.append(f"    {ids[src]} --> {ids[dst]}")
    lines.append(f"    style {ids[graph.root]} stroke-width:3px")
    return "\n".join(lines) + "\n"


def to_dot(graph: LineageGraph) -> str:
    """A Graphviz ``digraph``; every id and label is a quoted, escaped DOT string."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph lineage {", "    rankdir=LR;", '    node [shape=box, fontname="Helvetica"];']
    for ref in sorted(set(graph.nodes) | set(graph.missing)):
        if ref in graph.nodes:
            art = graph.nodes[ref]
            run = art.run
            label = (
                f"{art.ref} ({art.kind})\n{run.stage or '?'} [{run.job_id or '-'}]\n"
                f"config {(run.config_hash or '-')[:12]} {short_time(run.created_at)}"
            )
            extra = ", penwidth=3" if ref == graph.root else ""
        else:
            label, extra = f"{ref} (missing)", ", color=red"
        lines.append(f"    {q(ref)} [label={q(label)}{extra}];")
    for src, dst in graph.edges:
        lines.append(f"    {q(src)} -> {q(dst)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(graph: LineageGraph) -> str:
    return json.dumps(graph.to_dict(), indent=2, sort_keys=True) + "\n"


def from_json(text: str) -> LineageGraph:
    return LineageGraph.from_dict(json.loads(text))


def render(graph: LineageGraph, fmt: str, long: bool = False) -> Any:
    """The graph in ``fmt``: a rich Tree for ``tree`` (``long``: every detail), text for the export formats."""
    if fmt == "tree":
        return render_tree(graph, long=long)
    if fmt == "json":
        return to_json(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "dot":
        return to_dot(graph)
    raise UserError(f"unknown lineage format '{fmt}'", hint=f"use one of {', '.join(FORMATS)}")
