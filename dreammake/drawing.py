"""The job graph as Graphviz DOT, Mermaid, or a PNG/SVG picture drawn by Graphviz."""

from __future__ import annotations

import shutil
import subprocess

from dreammake.errors import DreamError
from dreammake.graph import Graph


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: jobs as boxes, source files as notes."""
    g = graph.to_networkx()
    lines = ["digraph dreammake {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for node, data in g.nodes(data=True):
        if data.get("kind") == "source":
            lines.append(f"  {_quote(node)} [shape=note, style=filled, fillcolor=\"#eeeeee\"];")
        else:
            label = node + "\\n" + "\\n".join(data.get("outputs", []))
            lines.append(f"  {_quote(node)} [shape=box, style=\"rounded,filled\", fillcolor=\"#dbeafe\","
                         f" label={_quote(label)}];")
    for a, b in g.edges():
        lines.append(f"  {_quote(a)} -> {_quote(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    """Mermaid flowchart text."""
    g = graph.to_networkx()
    ids = {node: f"n{i}" for i, node in enumerate(g.nodes)}
    lines = ["flowchart LR"]
    for node, data in g.nodes(data=True):
        label = node.replace('"', "'")
        shape = f'[("{label}")]' if data.get("kind") == "source" else f'["{label}"]'
        lines.append(f"  {ids[node]}{shape}")
    for a, b in g.edges():
        lines.append(f"  {ids[a]} --> {ids[b]}")
    return "\n".join(lines) + "\n"


def render(graph: Graph, fmt: str) -> str | bytes:
    """The graph in `fmt`: dot, mermaid, png or svg."""
    if fmt == "mermaid":
        return to_mermaid(graph)
    dot = to_dot(graph)
    if fmt == "dot":
        return dot
    exe = shutil.which("dot")
    if exe is None:
        raise DreamError(f"--format {fmt} needs Graphviz's `dot` program",
                         hint="install graphviz (e.g. apt-get install graphviz), or use --format dot|mermaid")
    out = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, check=False)
    if out.returncode != 0:
        raise DreamError(f"graphviz failed: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout if fmt == "png" else out.stdout.decode()
