"""Lineage graphs over a real registry, and exports checked by independent readers."""

from __future__ import annotations

import json
import re

import pydot
import pytest
from rich.console import Console

from nemotron.artifacts.lineage import (
    build_graph,
    from_json,
    node_label,
    render_tree,
    to_dot,
    to_json,
    to_mermaid,
)


def _text(tree) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(tree)
    return console.export_text()


def test_upstream_graph_of_eval_covers_the_whole_recipe(chain, registry):
    graph = build_graph(registry, "eval-results")
    assert graph.root == "eval-results:v1" and graph.direction == "up"
    assert set(graph.nodes) == {a.ref for a in chain.values()}
    assert ("rl-rlvr-model:v1", "eval-results:v1") in graph.edges
    assert ("quantized-model:v1", "eval-results:v1") in graph.edges
    assert ("sft-data:v1", "quantized-model:v1") in graph.edges and ("sft-data:v1", "sft-model:v1") in graph.edges
    assert len(graph.edges) == 9 and graph.missing == []
    # upstream of a data-prep output is just itself
    assert build_graph(registry, "pretrain-data").edges == []


def test_tree_lines_say_what_where_and_when(chain, registry):
    text = _text(render_tree(build_graph(registry, "eval-results:latest"), long=True))
    lines = text.splitlines()
    sft = chain["sft"]
    expected = f"sft-model:v1 @latest (model) ← sft [j5] config hash-j5 {sft.run.created_at[:10]}"
    assert any(expected in line for line in lines), text
    assert lines[0].startswith("eval-results:v1 @latest (eval-results) ← eval [j8] config hash-j8")
    assert "model: rl-rlvr-model:v1" in text and "quantized: quantized-model:v1" in text
    # the diamond: rl-rlvr-model appears twice, expanded once
    assert sum("rl-rlvr-model:v1" in line for line in lines) == 2
    assert sum("(shown above)" in line for line in lines) >= 1
    assert sum("pretrain-data:v1" in line for line in lines) == 1
    assert node_label(sft).startswith("sft-model:v1 (model) ← sft [j5] config hash-j5 ")


def test_short_tree_is_one_line_per_node_at_80_columns(chain, registry):
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    console.print(render_tree(build_graph(registry, "eval-results:latest")))
    lines = console.export_text().splitlines()
    assert lines[0] == "eval-results:v1 ← eval"
    assert any(line.endswith("model: rl-rlvr-model:v1 ← rl.rlvr") for line in lines)
    assert all("←" in line for line in lines), lines  # nothing wrapped onto a second line


def test_downstream(chain, registry):
    graph = build_graph(registry, "sft-data", down=True)
    assert set(graph.nodes) == {
        "sft-data:v1",
        "sft-model:v1",
        "rl-rlvr-model:v1",
        "quantized-model:v1",
        "eval-results:v1",
    }
    text = _text(render_tree(graph))
    assert text.splitlines()[0].startswith("sft-data:v1")
    assert "data: sft-model:v1" in text and "calib: quantized-model:v1" in text
    assert build_graph(registry, "eval-results", down=True).edges == []


def test_json_round_trips(chain, registry):
    for down in (False, True):
        graph = build_graph(registry, "sft-model:v1", down=down)
        again = from_json(to_json(graph))
        assert again == graph
        assert to_json(again) == to_json(graph)
    data = json.loads(to_json(build_graph(registry, "eval-results")))
    assert data["format"] == 1 and {"from": "rl-rlvr-model:v1", "to": "eval-results:v1"} in data["edges"]
    node = next(n for n in data["nodes"] if n["name"] == "sft-model")
    assert node["run"]["stage"] == "sft" and node["inputs"] == ["pretrain-model:v1", "sft-data:v1"]


@pytest.mark.filterwarnings("ignore:.*deprecated")
def test_dot_export_parses_with_pydot(chain, registry, make_data):
    # a hostile job id with quotes and backslashes must not break the syntax
    registry.publish(
        "sft-model", "model", make_data("x"), {}, {"model": chain["base"]}, {"stage": "sft", "id": 'a"b\\c'}
    )
    graph = build_graph(registry, "sft-model:v2")
    parsed = pydot.graph_from_dot_data(to_dot(graph))
    assert parsed and len(parsed) == 1
    dot = parsed[0]
    names = {n.get_name().strip('"') for n in dot.get_nodes() if n.get_name() not in ("node", "edge", "graph")}
    assert names == set(graph.nodes)
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in dot.get_edges()}
    assert edges == set(graph.edges)
    label = next(n for n in dot.get_nodes() if n.get_name().strip('"') == "sft-model:v2").get_label()
    assert '\\"b' in label and "sft" in label


MERMAID_NODE = re.compile(r'^    (n\d+)\["([^"]*)"\]$')
MERMAID_EDGE = re.compile(r"^    (n\d+) --> (n\d+)$")


def test_mermaid_export_is_well_formed(chain, registry, make_data):
    registry.publish(
        "sft-model", "model", make_data("x"), {}, {"model": chain["base"]}, {"stage": "sft", "id": 'we"ird<id>'}
    )
    graph = build_graph(registry, "eval-results")
    lines = to_mermaid(graph).splitlines()
    assert lines[0] == "flowchart LR"
    nodes, edges = {}, set()
    for line in lines[1:]:
        if m := MERMAID_NODE.match(line):
            nodes[m.group(1)] = m.group(2)
        elif m := MERMAID_EDGE.match(line):
            edges.add((m.group(1), m.group(2)))
        else:
            assert re.match(r"^    style n\d+ stroke-width:3px$", line), line
    assert len(nodes) == len(graph.nodes) and len(edges) == len(graph.edges)
    assert all(a in nodes and b in nodes for a, b in edges)
    by_ref = {label.split(" ")[0]: node_id for node_id, label in nodes.items()}
    assert {(by_ref[s], by_ref[d]) for s, d in graph.edges} == edges
    weird = build_graph(registry, "sft-model:v2")
    text = to_mermaid(weird)
    assert "we#quot;ird#lt;id#gt;" in text and 'we"ird' not in text
