"""Recursive fingerprints of a workflow, and where two workflows diverge.

A job's recursive fingerprint hashes the same five components as its build fingerprint
(kind, code, params, model, inputs), but an input made by another rule enters as that rule's
recursive fingerprint instead of the file's content hash. It therefore needs nothing built,
does not depend on the folder the project lives in, and two workflows give equal fingerprints
exactly when they would compute the same thing from the same source files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dreammake.fingerprint import digest

if TYPE_CHECKING:
    from dreammake.graph import Graph
    from dreammake.planner import Planner

OWN = ("kind", "code", "params", "model")


@dataclass
class Node:
    """One job of a workflow with its recursive fingerprint."""

    job: str
    rule: str
    outputs: list[str]
    fingerprint: str
    components: dict[str, str]
    inputs: dict[str, str]  # input path -> what it is: "job:NAME" or "source:CONTENT_HASH"
    deps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def fingerprints(graph: Graph, planner: Planner) -> dict[str, Node]:
    """Recursive fingerprints of every job with outputs, by job name, upstream first."""
    nodes: dict[str, Node] = {}
    producer_name: dict[str, tuple[str, int]] = {}
    for job in graph.jobs:
        for i, path in enumerate(job.output_paths):
            producer_name[path] = (job.name, i)
    for job in graph.jobs:
        if not job.outputs:
            continue
        ident = planner.identity(job)
        parts, inputs = [], {}
        for name, path in job.inputs:
            made = producer_name.get(path)
            if made is not None:
                upstream = nodes[made[0]].fingerprint
                value, inputs[path] = digest(f"{upstream}#{made[1]}"), f"job:{made[0]}"
            else:
                value = planner.content_hash(path) or "missing"
                inputs[path] = f"source:{value}"
            parts.append(f"{name}={value}" if job.rule.input_shape == "dict" else value)
        inputs_hash = digest("\n".join(parts))
        nodes[job.name] = Node(job.name, job.rule.name, job.output_paths, ident.fingerprint(inputs_hash),
                               ident.components(inputs_hash), inputs,
                               [d.name for d in job.deps if d.outputs])
    return nodes


def tree(nodes: dict[str, Node], root: str) -> list[str]:
    """`root` and everything upstream as an indented tree: fingerprint, job, outputs; sources as leaves."""
    lines: list[str] = []

    def walk(name: str, prefix: str, last: bool, top: bool) -> None:
        node = nodes[name]
        branch = "" if top else ("└─ " if last else "├─ ")
        lines.append(f"{prefix}{branch}{node.fingerprint}  {node.job}  {', '.join(node.outputs)}")
        children = [(v[4:], True) for v in node.inputs.values() if v.startswith("job:")]
        children += [(p, False) for p, v in node.inputs.items() if v.startswith("source:")]
        inner = prefix + ("" if top else ("   " if last else "│  "))
        for i, (child, is_job) in enumerate(children):
            end = i == len(children) - 1
            if is_job:
                walk(child, inner, end, False)
            else:
                lines.append(f"{inner}{'└─ ' if end else '├─ '}{node.inputs[child][7:]}  (source) {child}")

    walk(root, "", True, True)
    return lines


@dataclass
class Difference:
    """How one job compares between two workflows."""

    job: str
    status: str  # same | differs | only here | only there
    components: list[str] = field(default_factory=list)  # own components that differ, and "inputs"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def compare(here: dict[str, Node], there: dict[str, Node]) -> list[Difference]:
    """Job-by-job comparison (matched by job name, then by output path), in this workflow's order."""
    by_output = {p: n for n in there.values() for p in n.outputs}
    matched: dict[str, Node] = {}
    for name, node in here.items():
        other = there.get(name) or next((by_output[p] for p in node.outputs if p in by_output), None)
        if other is not None:
            matched[name] = other
    used = {n.job for n in matched.values()}
    out = []
    for name, node in here.items():
        other = matched.get(name)
        out.append(Difference(name, "only here") if other is None else _diff(node, other, here, there))
    out.extend(Difference(n, "only there") for n in there if n not in used)
    return out


def _diff(a: Node, b: Node, here: dict[str, Node], there: dict[str, Node]) -> Difference:
    label = a.job if a.job == b.job else f"{a.job} (there: {b.job})"
    if a.fingerprint == b.fingerprint:
        return Difference(label, "same")
    own = [c for c in OWN if a.components[c] != b.components[c]]
    details = []
    if own:
        details.append(", ".join(own) + " changed")
    if a.components["inputs"] != b.components["inputs"]:
        own.append("inputs")
        details.append(_inputs_detail(a, b, here, there))
    return Difference(label, "differs", own, "; ".join(details))


def _inputs_detail(a: Node, b: Node, here: dict[str, Node], there: dict[str, Node]) -> str:
    if set(a.inputs) != set(b.inputs):
        return "reads different inputs: " + ", ".join(sorted(set(a.inputs) ^ set(b.inputs)))
    if list(a.inputs) != list(b.inputs):
        return "reads its inputs in another order"
    changed = []
    for path, what in a.inputs.items():
        theirs = b.inputs[path]
        if what.startswith("job:") and theirs.startswith("job:"):
            if here[what[4:]].fingerprint != there[theirs[4:]].fingerprint:
                changed.append(f"upstream {what[4:]}")
        elif what != theirs:
            changed.append(f"source {path}")
    return "inputs changed (" + ", ".join(changed) + ")" if changed else "inputs changed"


def first_divergence(diffs: list[Difference]) -> Difference | None:
    """The most upstream job whose own recipe (not just its inputs) differs, else the first difference."""
    differing = [d for d in diffs if d.status != "same"]
    own = [d for d in differing if any(c in OWN for c in d.components) or d.status != "differs"]
    return (own or differing or [None])[0]

