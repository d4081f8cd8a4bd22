"""Inline SVG pictures for the HTML report: the job DAG (a layered layout with edges routed around the boxes,
no Graphviz), and charts drawn by matplotlib (loss curves, stacked bars). Output is plain `<svg>` markup
without any external reference.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from dreammake.errors import DreamError

if TYPE_CHECKING:
    import networkx

MAX_JOB_NODES = 150  # above this the DAG is drawn per rule instead of per job
CHAR_W = 7.0  # approximate width of a 12px sans-serif character
NODE_GAP, LAYER_GAP, PAD, MAX_NODE_W = 16, 56, 16, 260
LINE_H, OUT_LINE_H = 15, 13  # line heights of a box's name (12px) and output (10px)
STYLES = {  # status -> (fill, stroke, dash)
    "up-to-date": ("#dcfce7", "#16a34a", ""), "stale": ("#fef3c7", "#d97706", ""),
    "missing": ("#f3f4f6", "#9ca3af", "4 3"), "source": ("#e5e7eb", "#6b7280", ""),
}
PALETTE = ("#2563eb", "#dc2626", "#059669", "#7c3aed", "#d97706", "#0891b2")


def _text(x: float, y: float, text: str, size: int = 12, weight: str = "normal", anchor: str = "start",
          fill: str = "#111827") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}"'
            f' fill="{fill}">{escape(text)}</text>')


# -- the DAG ---------------------------------------------------------------------------------
def collapse(g: networkx.DiGraph, status: dict[str, str]) -> tuple[networkx.DiGraph, dict[str, str]]:
    """One node per rule (labelled with its job count) for graphs too big to draw per job."""
    import networkx as nx

    order = ("missing", "stale", "up-to-date")
    rules = nx.DiGraph()
    for data in g.nodes.values():
        if data.get("kind") != "job":
            continue
        rule = data["rule"]
        if rule not in rules:
            rules.add_node(rule, kind="job", rule=rule, outputs=[], count=0)
        rules.nodes[rule]["count"] += 1
    rule_status: dict[str, str] = {}
    for node, data in g.nodes(data=True):
        if data.get("kind") == "job":
            s, rule = status.get(node, "missing"), data["rule"]
            rule_status[rule] = min(rule_status.get(rule, s), s, key=order.index)
    for a, b in g.edges():
        ra, rb = g.nodes[a].get("rule"), g.nodes[b].get("rule")
        if ra and rb and ra != rb:
            rules.add_edge(ra, rb)
    for rule in rules.nodes:
        n = rules.nodes[rule]["count"]
        rules.nodes[rule]["outputs"] = [f"{n:,} jobs"] if n > 1 else []
    return rules, rule_status


WAYPOINT = "\x00"  # prefix of the waypoint nodes a long edge gets in each column it crosses
WAYPOINT_H = 8


def layers(g: networkx.DiGraph) -> tuple[list[list[str]], dict[tuple[str, str], list[str]]]:
    """Nodes in columns: a job one column right of its deepest input; a source just left of its first reader.

    An edge that spans several columns gets a waypoint in each column between its ends (returned per
    edge, in order), so the ordering keeps a lane free for it and it is drawn around the boxes."""
    import networkx as nx

    jobs = [n for n in nx.topological_sort(g) if g.nodes[n].get("kind") != "source"]
    has_sources = any(g.nodes[n].get("kind") == "source" for n in g.nodes)
    level: dict[str, int] = {}
    for n in jobs:
        level[n] = max((level[p] + 1 for p in g.predecessors(n) if p in level), default=int(has_sources))
    for n in g.nodes:
        if n not in level:
            level[n] = max(0, min((level[s] for s in g.successors(n) if s in level), default=1) - 1)
    routed = nx.DiGraph()
    routed.add_nodes_from(g.nodes)
    waypoints: dict[tuple[str, str], list[str]] = {}
    for a, b in g.edges():
        chain = [f"{WAYPOINT}{a}\x00{b}\x00{k}" for k in range(level[a] + 1, level[b])]
        for k, point in zip(range(level[a] + 1, level[b]), chain):
            level[point] = k
        nx.add_path(routed, [a, *chain, b])
        waypoints[(a, b)] = chain
    columns: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in routed.nodes:
        columns[level[n]].append(n)
    columns = [col for col in columns if col]
    _order(routed, columns)
    return columns, waypoints


def _order(g: networkx.DiGraph, columns: list[list[str]]) -> None:
    """Barycenter sweeps (down, then up) to reduce edge crossings, in place."""
    for sweep in range(4):
        down = sweep % 2 == 0
        indexes = range(1, len(columns)) if down else range(len(columns) - 2, -1, -1)
        for i in indexes:
            ref = {n: k for k, n in enumerate(columns[i - 1 if down else i + 1])}
            keys: dict[str, float] = {}
            for k, n in enumerate(columns[i]):
                pos = [ref[m] for m in (g.predecessors(n) if down else g.successors(n)) if m in ref]
                keys[n] = sum(pos) / len(pos) if pos else float(k)
            columns[i].sort(key=keys.__getitem__)


def wrap(text: str, chars: int) -> list[str]:
    """`text` in lines of at most `chars` characters, broken after `/`, `_`, `-`, `,`, `]` or a space when
    possible (a path or a job name with wildcards has no spaces)."""
    lines: list[str] = []
    while len(text) > chars:
        cut = max(text.rfind(c, 0, chars) for c in "/_-,] ")
        cut = cut + 1 if cut > 0 else chars
        lines.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*lines, text] if text or not lines else lines


def _labels(node: str, data: dict) -> tuple[list[str], list[str]]:
    """The wrapped name and first-output lines of a box."""
    chars = int((MAX_NODE_W - 20) / CHAR_W)
    outputs = data.get("outputs", [])
    output = outputs[0] + (f" +{len(outputs) - 1}" if len(outputs) > 1 else "") if outputs else ""
    return wrap(str(node), chars), wrap(output, chars) if output else []


def dag_svg(g: networkx.DiGraph, status: dict[str, str]) -> str:
    """The job graph as an inline SVG: boxes coloured by status, source files as grey notes, left to right;
    edges that skip columns run in lanes between the boxes."""
    if sum(1 for _, d in g.nodes(data=True) if d.get("kind") == "job") > MAX_JOB_NODES:
        g, status = collapse(g, status)
    columns, waypoints = layers(g)
    size: dict[str, tuple[float, float]] = {}
    labels: dict[str, tuple[list[str], list[str]]] = {}
    for node, data in g.nodes(data=True):
        names, outs = labels[node] = _labels(node, data)
        width = max(len(t) for t in [*names, *outs]) * CHAR_W + 20
        height = (LINE_H * len(names) + 10 if data.get("kind") == "source"
                  else LINE_H * len(names) + OUT_LINE_H * len(outs) + 18)
        size[node] = (min(max(width, 90), MAX_NODE_W), height)
    for chain in waypoints.values():
        size.update((point, (0.0, WAYPOINT_H)) for point in chain)
    heights = [sum(size[n][1] for n in col) + NODE_GAP * max(len(col) - 1, 0) for col in columns]
    total_h = max(heights, default=0) + 2 * PAD
    pos: dict[str, tuple[float, float]] = {}
    spans: dict[str, tuple[float, float]] = {}  # a node's column: (left, right)
    x = PAD
    for col, col_h in zip(columns, heights):
        col_w = max((size[n][0] for n in col), default=0)
        y = (total_h - col_h) / 2
        for n in col:
            w, h = size[n]
            pos[n] = (x + (col_w - w) / 2, y)
            spans[n] = (x, x + col_w)
            y += h + NODE_GAP
        x += col_w + LAYER_GAP
    width = x - LAYER_GAP + PAD
    parts = [f'<svg class="dag" role="img" aria-label="job graph" width="{width:.0f}" height="{total_h + 28:.0f}"'
             f' viewBox="0 0 {width:.0f} {total_h + 28:.0f}" font-family="system-ui, sans-serif">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
             ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>']
    for (a, b), chain in waypoints.items():
        parts.append(_edge(a, b, chain, pos, size, spans))
    for node, data in g.nodes(data=True):
        parts.append(_node(node, data, pos[node], size[node], status, labels[node]))
    parts.append(_legend(PAD, total_h + 8))
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(a: str, b: str, chain: list[str], pos: dict[str, tuple[float, float]],
          size: dict[str, tuple[float, float]], spans: dict[str, tuple[float, float]]) -> str:
    """One edge: straight along its own lane inside each column (out of `a`, through each waypoint, into
    `b`), S-curves only in the gaps between columns, where there are no boxes."""
    def middle(n: str) -> float:
        return pos[n][1] + size[n][1] / 2

    x0, y0 = pos[a][0] + size[a][0], middle(a)
    d = [f"M {x0:.1f} {y0:.1f} H {spans[a][1]:.1f}"]
    x, y = spans[a][1], y0
    end = pos[b][0] - 2  # the arrow's tip, just left of b's box
    for n in [*chain, b]:
        nx_, ny = min(spans[n][0], end), middle(n)
        dx = (nx_ - x) / 2
        d.append(f"C {x + dx:.1f} {y:.1f} {nx_ - dx:.1f} {ny:.1f} {nx_:.1f} {ny:.1f}")
        x, y = (spans[n][1], ny) if n != b else (end, ny)
        if x > nx_:  # never backwards: the arrow head takes the direction of the last piece
            d.append(f"H {x:.1f}")
    return (f'<path class="edge" d="{" ".join(d)}" fill="none" stroke="#9ca3af" stroke-width="1.4"'
            f' marker-end="url(#arrow)"/>')


def _node(node: str, data: dict, at: tuple[float, float], size: tuple[float, float], status: dict[str, str],
          labels: tuple[list[str], list[str]]) -> str:
    (x, y), (w, h) = at, size
    source = data.get("kind") == "source"
    state = "source" if source else status.get(node, "missing")
    fill, stroke, dash = STYLES[state]
    title = escape(f"{node} ({state})" + "".join(f"\n{o}" for o in data.get("outputs", [])))
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    out = [f'<g class="node {state}"><title>{title}</title>',
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{3 if source else 8}"'
           f' fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash_attr}/>']
    names, outs = labels
    if source:
        out.append(_lines(x + 10, y + 17, names, LINE_H, 11, fill="#374151"))
    else:
        out.append(_lines(x + 10, y + 19, names, LINE_H, 12, "600"))
        if outs:
            out.append(_lines(x + 10, y + 19 + LINE_H * len(names) + 2, outs, OUT_LINE_H, 10, fill="#4b5563"))
    out.append("</g>")
    return "".join(out)


def _lines(x: float, y: float, lines: list[str], step: float, size: int, weight: str = "normal",
           fill: str = "#111827") -> str:
    """Text lines one under the other: one `<text>` with a line per `<tspan>` (a single line: plain text)."""
    if len(lines) == 1:
        return _text(x, y, lines[0], size, weight, fill=fill)
    spans = "".join(f'<tspan x="{x:.1f}" dy="{0 if i == 0 else step}">{escape(t)}</tspan>' for i, t in enumerate(lines))
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" fill="{fill}">{spans}</text>'


def _legend(x: float, y: float) -> str:
    out = []
    for state, (fill, stroke, dash) in STYLES.items():
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" rx="2" fill="{fill}" stroke="{stroke}"'
                   f'{dash_attr}/>' + _text(x + 17, y + 10, state, 11, fill="#374151"))
        x += 30 + len(state) * CHAR_W
    return "".join(out)


# -- charts (matplotlib) ----------------------------------------------------------------------
CHART_STYLE = {"font.family": "sans-serif", "font.size": 9, "axes.edgecolor": "#9ca3af", "axes.grid": True,
               "grid.color": "#e5e7eb", "axes.spines.top": False, "axes.spines.right": False,
               "axes.axisbelow": True, "svg.fonttype": "none",  # text stays text
               "svg.hashsalt": "dreammake"}  # stable ids


@contextlib.contextmanager
def _chart(width: float, height: float) -> Iterator[Any]:
    """A matplotlib Figure (no pyplot, no GUI backend) in the report's style, sized in pixels at 96 dpi."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise DreamError("the report's charts need matplotlib", hint="pip install 'dreammake[report]'") from None
    with matplotlib.rc_context(CHART_STYLE):
        yield Figure(figsize=(width / 96, height / 96), dpi=96, layout="constrained")


def _svg(fig: Any, css_class: str, label: str) -> str:
    """The figure as inline `<svg>` markup: text stays text (searchable, testable), no XML prologue, no
    metadata and no namespace URLs (inline SVG in HTML needs none)."""
    import io

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.replace("<svg", f'<svg class="{css_class}" role="img" aria-label="{escape(label)}"', 1)


def line_plot_svg(title: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                  x_label: str = "step", y_label: str = "loss", width: int = 620, height: int = 300) -> str:
    """Line plot of (name, xs, ys) series (matplotlib): integer x ticks (steps), a marker on every point when
    a series is short (an eval loss measured once is a labelled dot), the last value of each series written
    beside it, and a legend."""
    with _chart(width, height) as fig:
        from matplotlib.ticker import MaxNLocator

        ax = fig.add_subplot()
        for i, (name, xs, ys) in enumerate(s for s in series if s[1]):
            colour = PALETTE[i % len(PALETTE)]
            ax.plot(xs, ys, color=colour, linewidth=1.8, marker="o" if len(xs) <= 30 else None,
                    markersize=3.5 if len(xs) > 1 else 6, label=name)
            ax.annotate(f"{ys[-1]:.3g}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(5, 4), color=colour,
                        fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.legend(frameon=False, loc="upper right")
        return _svg(fig, "plot", title)


def bars_svg(rows: Sequence[tuple[str, float, float]], labels: tuple[str, str] = ("model calls", "cache hits"),
             width: int = 620) -> str:
    """Horizontal stacked bars (name, first, second), matplotlib: e.g. LLM calls vs row-cache hits per job."""
    with _chart(width, 70 + 26 * len(rows)) as fig:
        from matplotlib.ticker import MaxNLocator

        ax = fig.add_subplot()
        names = [name for name, _, _ in rows][::-1]  # the first row on top
        first = [a for _, a, _ in rows][::-1]
        second = [b for _, _, b in rows][::-1]
        ax.barh(names, first, color="#2563eb", label=labels[0], height=0.6)
        ax.barh(names, second, left=first, color="#10b981", label=labels[1], height=0.6)
        for y, (a, b) in enumerate(zip(first, second)):
            ax.annotate(f"{a:,.0f} / {b:,.0f}", (a + b, y), textcoords="offset points", xytext=(4, -3), fontsize=8,
                        color="#4b5563")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.15)
        ax.legend(frameon=False, loc="lower right", ncols=2, bbox_to_anchor=(1, 1))
        return _svg(fig, "bars", f"{labels[0]} and {labels[1]}")
