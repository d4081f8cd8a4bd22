"""From requested targets to a DAG of jobs.

A job is one rule applied with concrete wildcard values. The DAG is kept as plain
lists in topological order (fast enough for 30,000 jobs in well under a second);
`to_networkx()` gives the networkx view for drawing and analysis.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dreammake.confine import OutsideProject, confine
from dreammake.dsl import Rule, Workflow
from dreammake.errors import DreamError
from dreammake.paths import Pattern, fill, normalize
from dreammake.suggest import closest, did_you_mean

if TYPE_CHECKING:
    import networkx


UNVISITED, ON_PATH = -1, -2  # Job.index before it has a place in the order


class Job:
    """One rule with concrete inputs and outputs; `deps` are the jobs that make its inputs."""

    __slots__ = ("rule", "wildcards", "inputs", "outputs", "deps", "index")

    def __init__(self, rule: Rule, wildcards: dict[str, str], inputs: tuple[tuple[str | None, str], ...],
                 outputs: tuple[tuple[str | None, str], ...]):
        self.rule = rule
        self.wildcards = wildcards
        self.inputs = inputs
        self.outputs = outputs
        self.deps: list[Job] = []
        self.index = UNVISITED  # the position in the graph's topological order once resolved

    def __repr__(self) -> str:
        return f"Job({self.name})"

    @property
    def name(self) -> str:
        """`rule` or `rule[split=train]`, for logs."""
        if not self.wildcards:
            return self.rule.name
        return f"{self.rule.name}[{','.join(f'{k}={v}' for k, v in self.wildcards.items())}]"

    @property
    def output_paths(self) -> list[str]:
        return [p for _, p in self.outputs]

    @property
    def input_paths(self) -> list[str]:
        return [p for _, p in self.inputs]


class Graph:
    """The jobs needed for some targets, in topological order, plus the source files they read."""

    def __init__(self, jobs: list[Job], sources: dict[str, Job], producer: dict[str, Job], requested: list[Job]):
        self.jobs = jobs
        self.sources = sources  # source path -> first job that reads it
        self.producer = producer
        self.requested = requested

    def until(self, rule_name: str) -> Graph:
        """Only the jobs of `rule_name` and what they need (`--until RULE`)."""
        targets = [j for j in self.jobs if j.rule.name == rule_name]
        if not targets:
            names = {j.rule.name for j in self.jobs}
            raise DreamError(f"--until {rule_name}: no job of that rule is needed for the requested targets"
                             f"{did_you_mean(rule_name, names)}")
        keep: set[int] = set()
        stack = list(targets)
        while stack:
            job = stack.pop()
            if id(job) not in keep:
                keep.add(id(job))
                stack.extend(job.deps)
        jobs = [j for j in self.jobs if id(j) in keep]
        sources = {p: j for p, j in self.sources.items() if id(j) in keep}
        return Graph(jobs, sources, self.producer, targets)

    def to_networkx(self) -> networkx.DiGraph:
        """Jobs and source files as a networkx DiGraph (edges point downstream)."""
        import networkx as nx

        g = nx.DiGraph()
        for job in self.jobs:
            g.add_node(job.name, kind="job", rule=job.rule.name, outputs=job.output_paths)
            for dep in job.deps:
                g.add_edge(dep.name, job.name)
        for job in self.jobs:
            for path in job.input_paths:
                if path in self.sources:
                    g.add_node(path, kind="source")
                    g.add_edge(path, job.name)
        return g


class Resolver:
    """Finds which rule makes each path and builds the job DAG."""

    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        self.exact: dict[str, Rule] = {}
        self.patterns: list[tuple[Pattern, Rule]] = []
        for rule in workflow.rules:
            for _, path in rule.outputs:
                if rule.wildcard_outputs and "{" in path:
                    self.patterns.append((Pattern(path), rule))
                    continue
                other = self.exact.get(path)
                if other is not None and other is not rule:
                    raise DreamError(f"two rules make {path}: {other.name!r} ({other.where}) and {rule.name!r}",
                                     rule.where)
                self.exact[path] = rule
        self.jobs: dict[Any, Job] = {}

    def producer_of(self, path: str) -> tuple[Rule, dict[str, str]] | None:
        """The rule (and wildcard values) that makes `path`, or None for a source file."""
        rule = self.exact.get(path)
        if rule is not None:
            return rule, {}
        found = []
        for pattern, rule in self.patterns:
            values = pattern.match(path)
            if values is not None:
                found.append((rule, values))
        if len(found) > 1:
            names = ", ".join(f"{r.name!r} ({r.where})" for r, _ in found)
            raise DreamError(f"{path} matches the outputs of several rules: {names}",
                             hint="make the wildcard patterns more specific, e.g. {name,regex}")
        return found[0] if found else None

    def job_for(self, rule: Rule, wildcards: dict[str, str]) -> Job:
        if not wildcards:
            job = self.jobs.get(rule.name)
            if job is None:
                job = self.jobs[rule.name] = Job(rule, wildcards, rule.inputs, rule.outputs)
            return job
        key = (rule.name, tuple(sorted(wildcards.items())))
        job = self.jobs.get(key)
        if job is None:
            try:
                inputs = tuple((n, normalize(fill(p, wildcards))) for n, p in rule.inputs)
                outputs = tuple((n, normalize(fill(p, wildcards))) for n, p in rule.outputs)
            except KeyError as exc:
                raise DreamError(f"rule {rule.name!r}: wildcard {exc.args[0]!r} is used in an input but"
                                 " not defined by the output", rule.where) from None
            try:
                outputs = tuple((n, confine(p, self.workflow.project)) for n, p in outputs)
            except OutsideProject as exc:
                raise DreamError(f"rule {rule.name!r}: {exc}", rule.where,
                                 hint="outputs must lie inside the project folder") from None
            job = Job(rule, wildcards, inputs, outputs)
            self.jobs[key] = job
        return job

    def request(self, name: str) -> Job:
        """The job for a requested target: a path, or a rule name (like `all`)."""
        path = normalize(name)
        found = self.producer_of(path)
        if found is not None:
            return self.job_for(*found)
        rule = self.workflow.by_name.get(name)
        if rule is not None:
            if rule.wildcard_outputs:
                raise DreamError(f"rule {name!r} has wildcards; ask for one of its outputs instead", rule.where)
            return self.job_for(rule, {})
        if os.path.exists(path):
            raise DreamError(f"{name} is a source file, not a target: no rule makes it")
        match = closest(name, [*self.exact, *self.workflow.by_name])
        if match is not None:
            raise DreamError(f"no rule makes {name}", hint=f"did you mean {match}?")
        raise DreamError(f"no rule makes {name}", hint="check the path, or run `dreammake status` to list targets")

    def resolve(self, names: list[str]) -> Graph:
        """Build the DAG for the requested targets (an iterative depth-first walk); errors on cycles.

        `Job.index` marks the walk: UNVISITED, ON_PATH (on the current path), then the job's place in the order.
        """
        requested = [self.request(n) for n in names]
        order: list[Job] = []
        sources: dict[str, Job] = {}
        producer: dict[str, Job] = {}
        exact = self.exact
        plain_jobs = self.jobs  # rules without wildcards have one job, keyed by rule name
        for root in requested:
            if root.index != UNVISITED:
                continue
            root.index = ON_PATH
            # (job, its remaining inputs, ids of its deps so far: only needed when it has several inputs)
            stack = [(root, iter(root.inputs), set() if len(root.inputs) > 1 else None)]
            while stack:
                job, pending, known = stack[-1]
                for _, path in pending:
                    rule = exact.get(path)
                    if rule is not None:
                        dep = plain_jobs.get(rule.name) or self.job_for(rule, {})
                    else:
                        found = self.producer_of(path) if self.patterns else None
                        if found is None:
                            sources.setdefault(path, job)
                            continue
                        dep = self.job_for(*found)
                    if known is None:
                        job.deps.append(dep)
                    elif id(dep) not in known:
                        known.add(id(dep))
                        job.deps.append(dep)
                    if dep.index >= 0:
                        continue
                    if dep.index == ON_PATH:
                        path_jobs = [entry[0] for entry in stack]
                        cycle = [j.name for j in path_jobs[path_jobs.index(dep):]] + [dep.name]
                        raise DreamError("cycle: " + " -> ".join(cycle), job.rule.where)
                    dep.index = ON_PATH
                    stack.append((dep, iter(dep.inputs), set() if len(dep.inputs) > 1 else None))
                    break
                else:
                    stack.pop()
                    job.index = len(order)
                    order.append(job)
                    for _, out in job.outputs:
                        producer[out] = job
        return Graph(order, sources, producer, requested)


def default_targets(workflow: Workflow) -> list[str]:
    """`all` when the Dreamfile has it, else every output no rule reads (the final targets)."""
    if "all" in workflow.by_name:
        return ["all"]
    consumed = set()
    for rule in workflow.rules:
        consumed.update(p for _, p in rule.inputs)
    finals = []
    for rule in workflow.rules:
        if rule.wildcard_outputs:
            continue
        if not rule.outputs:
            finals.append(rule.name)
            continue
        for _, path in rule.outputs:
            if path in consumed:
                break
        else:
            finals.append(rule.outputs[0][1])
    if not finals:
        raise DreamError("the Dreamfile defines no rules", hint="add rule(...) calls, or a rule('all', input=[...])")
    return finals


def describe(job: Job) -> dict[str, Any]:
    """A plain-data view of a job for JSON output."""
    return {"job": job.name, "rule": job.rule.name, "outputs": job.output_paths, "inputs": job.input_paths}
