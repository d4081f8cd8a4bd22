"""Inline SVG pictures for the HTML report: the job DAG (a layered layout, no Graphviz), line plots
and stacked bars. Output is plain `<svg>` markup without any external reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx

MAX_JOB_NODES = 150  # above this the DAG is drawn per rule instead of per job
CHAR_W = 7.0  # approximate width of a 12px sans-serif character
NODE_H, SOURCE_H, NODE_GAP, LAYER_GAP, PAD = 46, 30, 16, 56, 16
STYLES = {  # status -> (fill, stroke, dash)
    "up-to-date": ("#dcfce7", "#16a34a", ""), "stale": ("#fef3c7", "#d97706", ""),
    "missing": ("#f3f4f6", "#9ca3af", "4 3"), "source": ("#e5e7eb", "#6b7280", ""),
}
PALETTE = ("#2563eb", "#dc2626", "#059669", "#7c3aed", "#d97706", "#0891b2")


def _text(x: float, y: float, text: str, size: int = 12, weight: str = "normal", anchor: str = "start",
          fill: str = "#111827") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}"'
            f' fill="{fill}">{escape(text)}</text>')


def _fit(text: str, width: float) -> str:
    chars = max(4, int(width / CHAR_W))
    return text if len(text) <= chars else text[: chars - 1] + "…"


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


def layers(g: networkx.DiGraph) -> list[list[str]]:
    """Nodes in columns: a job one column right of its deepest input; a source just left of its first reader."""
    import networkx as nx

    jobs = [n for n in nx.topological_sort(g) if g.nodes[n].get("kind") != "source"]
    has_sources = any(g.nodes[n].get("kind") == "source" for n in g.nodes)
    level: dict[str, int] = {}
    for n in jobs:
        level[n] = max((level[p] + 1 for p in g.predecessors(n) if p in level), default=int(has_sources))
    for n in g.nodes:
        if n not in level:
            level[n] = max(0, min((level[s] for s in g.successors(n) if s in level), default=1) - 1)
    columns: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for n in g.nodes:
        columns[level[n]].append(n)
    columns = [col for col in columns if col]
    _order(g, columns)
    return columns


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


def dag_svg(g: networkx.DiGraph, status: dict[str, str]) -> str:
    """The job graph as an inline SVG: boxes coloured by status, source files as grey notes, left to right."""
    if sum(1 for _, d in g.nodes(data=True) if d.get("kind") == "job") > MAX_JOB_NODES:
        g, status = collapse(g, status)
    columns = layers(g)
    size: dict[str, tuple[float, float]] = {}
    for node, data in g.nodes(data=True):
        lines = [str(node), *data.get("outputs", [])[:1]]
        width = min(max(len(t) for t in lines) * CHAR_W + 24, 260)
        size[node] = (max(width, 90), SOURCE_H if data.get("kind") == "source" else NODE_H)
    heights = [sum(size[n][1] for n in col) + NODE_GAP * max(len(col) - 1, 0) for col in columns]
    total_h = max(heights, default=0) + 2 * PAD
    pos: dict[str, tuple[float, float]] = {}
    x = PAD
    for col, col_h in zip(columns, heights):
        col_w = max((size[n][0] for n in col), default=0)
        y = (total_h - col_h) / 2
        for n in col:
            w, h = size[n]
            pos[n] = (x + (col_w - w) / 2, y)
            y += h + NODE_GAP
        x += col_w + LAYER_GAP
    width = x - LAYER_GAP + PAD
    parts = [f'<svg class="dag" role="img" aria-label="job graph" width="{width:.0f}" height="{total_h + 28:.0f}"'
             f' viewBox="0 0 {width:.0f} {total_h + 28:.0f}" font-family="system-ui, sans-serif">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
             ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#6b7280"/></marker></defs>']
    for a, b in g.edges():
        (ax, ay), (bx, by) = pos[a], pos[b]
        x1, y1 = ax + size[a][0], ay + size[a][1] / 2
        x2, y2 = bx - 2, by + size[b][1] / 2
        dx = max((x2 - x1) / 2, 20)
        parts.append(f'<path d="M {x1:.1f} {y1:.1f} C {x1 + dx:.1f} {y1:.1f} {x2 - dx:.1f} {y2:.1f} {x2:.1f}'
                     f' {y2:.1f}" fill="none" stroke="#9ca3af" stroke-width="1.4" marker-end="url(#arrow)"/>')
    for node, data in g.nodes(data=True):
        parts.append(_node(node, data, pos[node], size[node], status))
    parts.append(_legend(PAD, total_h + 8))
    parts.append("</svg>")
    return "\n".join(parts)


def _node(node: str, data: dict, at: tuple[float, float], size: tuple[float, float], status: dict[str, str]) -> str:
    (x, y), (w, h) = at, size
    source = data.get("kind") == "source"
    state = "source" if source else status.get(node, "missing")
    fill, stroke, dash = STYLES[state]
    title = escape(f"{node} ({state})" + "".join(f"\n{o}" for o in data.get("outputs", [])))
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    out = [f'<g class="node {state}"><title>{title}</title>',
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{3 if source else 8}"'
           f' fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash_attr}/>']
    if source:
        out.append(_text(x + 10, y + h / 2 + 4, _fit(str(node), w - 16), 11, fill="#374151"))
    else:
        out.append(_text(x + 10, y + 19, _fit(str(node), w - 16), 12, "600"))
        outputs = data.get("outputs", [])
        if outputs:
            more = f" +{len(outputs) - 1}" if len(outputs) > 1 else ""
            out.append(_text(x + 10, y + 35, _fit(outputs[0] + more, w - 16), 10, fill="#4b5563"))
    out.append("</g>")
    return "".join(out)


def _legend(x: float, y: float) -> str:
    out = []
    for state, (fill, stroke, dash) in STYLES.items():
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" rx="2" fill="{fill}" stroke="{stroke}"'
                   f'{dash_attr}/>' + _text(x + 17, y + 10, state, 11, fill="#374151"))
        x += 30 + len(state) * CHAR_W
    return "".join(out)


# -- plots -----------------------------------------------------------------------------------
def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high]."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2e}"


def line_plot_svg(title: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                  x_label: str = "step", y_label: str = "loss", width: int = 620, height: int = 280) -> str:
    """Line plot of (name, xs, ys) series with axes, round ticks and a legend."""
    series = [(n, xs, ys) for n, xs, ys in series if xs]
    left, right, top, bottom = 58, 16, 34, 42
    xs_all = [x for _, xs, _ in series for x in xs] or [0.0, 1.0]
    ys_all = [y for _, _, ys in series for y in ys] or [0.0, 1.0]
    xt, yt = nice_ticks(min(xs_all), max(xs_all)), nice_ticks(min(ys_all), max(ys_all))
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (v - xt[0]) / ((xt[-1] - xt[0]) or 1) * pw

    def sy(v: float) -> float:
        return top + ph - (v - yt[0]) / ((yt[-1] - yt[0]) or 1) * ph

    parts = [f'<svg class="plot" role="img" aria-label="{escape(title)}" width="{width}" height="{height}"'
             f' viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#ffffff" stroke="#d1d5db"/>',
             _text(left, 20, title, 13, "600")]
    for v in yt:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#f3f4f6"/>')
        parts.append(_text(left - 6, sy(v) + 4, _label(v), 10, anchor="end", fill="#4b5563"))
    for v in xt:
        parts.append(_text(sx(v), top + ph + 15, _label(v), 10, anchor="middle", fill="#4b5563"))
    parts.append(_text(left + pw / 2, height - 6, x_label, 11, anchor="middle", fill="#374151"))
    parts.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="11" fill="#374151" text-anchor="middle"'
                 f' transform="rotate(-90 14 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    for i, (name, xs, ys) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline class="series" points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if len(xs) <= 30:
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>' for x, y in zip(xs, ys))
        lx = left + pw - 110
        ly = top + 14 + 16 * i
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
        parts.append(_text(lx + 24, ly, name, 11))
    parts.append("</svg>")
    return "\n".join(parts)


def bars_svg(rows: Sequence[tuple[str, float, float]], labels: tuple[str, str] = ("model calls", "cache hits"),
             width: int = 620) -> str:
    """Horizontal stacked bars (name, first, second): e.g. LLM calls vs row-cache hits per rule."""
    label_w, row_h, top = 170, 24, 28
    height = top + row_h * len(rows) + 8
    biggest = max((a + b for _, a, b in rows), default=0) or 1
    scale = (width - label_w - 70) / biggest
    colours = ("#2563eb", "#10b981")
    parts = [f'<svg class="bars" role="img" aria-label="{escape(labels[0])} and {escape(labels[1])}"'
             f' width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">']
    lx = label_w
    for colour, name in zip(colours, labels):
        parts.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{colour}"/>' + _text(lx + 17, 16, name, 11))
        lx += 40 + len(name) * CHAR_W
    for i, (name, a, b) in enumerate(rows):
        y = top + i * row_h
        parts.append(_text(label_w - 8, y + 15, _fit(name, label_w - 12), 11, anchor="end"))
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{a * scale:.1f}" height="{row_h - 8}"'
                     f' fill="{colours[0]}"><title>{escape(name)}: {a:,.0f} {labels[0]}</title></rect>')
        parts.append(f'<rect x="{label_w + a * scale:.1f}" y="{y + 3}" width="{b * scale:.1f}" height="{row_h - 8}"'
                     f' fill="{colours[1]}"><title>{escape(name)}: {b:,.0f} {labels[1]}</title></rect>')
        parts.append(_text(label_w + (a + b) * scale + 6, y + 15, f"{a:,.0f} / {b:,.0f}", 10, fill="#4b5563"))
    parts.append("</svg>")
    return "\n".join(parts)
