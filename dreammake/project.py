"""One project = a Dreamfile + its state: the phases of a run (load, resolve, plan, execute).

The CLI calls these functions; they hold the build logic and return plain results.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dreammake.console import Console
from dreammake.dsl import Workflow, load
from dreammake.errors import DreamError
from dreammake.graph import Graph, Resolver, default_targets
from dreammake.planner import Decision, Planner
from dreammake.state import State

if TYPE_CHECKING:
    from dreammake.executor import Summary


@dataclass
class Options:
    """Settings shared by every command."""

    dreamfile: str = "Dreamfile"
    config: dict[str, Any] | None = None
    wait: bool = True
    debug: bool = False
    one_shot: bool = False  # the process ends after this command: leave the garbage collector off
    read_only: bool = False  # a plan or check (-n, -q): nothing is written to the state


class Project:
    """A loaded Dreamfile with its state; open with `with Project(opts, console) as p:`."""

    def __init__(self, options: Options, console: Console):
        self.options = options
        self.console = console
        self.root = Path.cwd()
        gc.disable()  # loading and planning allocate many long-lived objects and make no cycles
        self.workflow: Workflow = load(options.dreamfile, options.config)
        self._state: State | None = None

    @property
    def state(self) -> State:
        if self._state is None:
            def on_wait(pid: str) -> None:
                self.console.line("warn", f"another dreammake (pid {pid}) is running here; waiting for it to finish…")

            self._state = State(self.root, wait=self.options.wait, on_wait=on_wait, read_only=self.options.read_only)
        return self._state

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.options.one_shot:
            gc.enable()  # (enabling it collects everything loaded so far: 40 ms for a 20,000-job workflow)
        if self._state is not None:
            self._state.close()
            self._state = None

    # -- phases ------------------------------------------------------------------------------
    def graph(self, targets: list[str] | None = None, until: str | None = None) -> Graph:
        """Resolve targets (default: `all`, else the final targets) into a job DAG."""
        names = list(targets) if targets else default_targets(self.workflow)
        graph = Resolver(self.workflow).resolve(names)
        return graph.until(until) if until else graph

    def planner(self, graph: Graph, forced: list[str] | None = None, force_all: bool = False) -> Planner:
        """The planner over `graph`; `forced` outputs (paths of its jobs) rebuild whatever their state."""
        from dreammake.paths import normalize
        from dreammake.suggest import did_you_mean

        paths = {normalize(f) for f in forced or []}
        outputs = {p for job in graph.jobs for p in job.output_paths}
        for path in sorted(paths - outputs):
            raise DreamError(f"--force {path}: not an output of the jobs to build{did_you_mean(path, outputs)}",
                             hint="name an output path of one of the requested targets")
        return Planner(graph, self.state, paths, force_all)

    def build(self, planner: Planner, decisions: list[Decision], jobs: int = 1, keep_going: bool = False,
              resources: dict[str, float] | None = None, max_cost: float | None = None,
              jobserver: Any = None, executor: str = "local") -> Summary:
        """Run the stale jobs on the executor registered as `executor` and record their outputs; models are freed
        at the end."""
        from dreammake.executors import executor_factory
        from dreammake.llm.generate import Budget
        from dreammake.runner import JobRunner

        factory = executor_factory(executor)
        gc.enable()
        state = self.state
        from dreammake.cards.secrets import scrub_command

        run_id = state.start_run(scrub_command(" ".join(["dreammake", *sys.argv[1:]])))
        runner = JobRunner(planner, str(self.root), log=lambda text: self.console.line("info", text),
                           progress=self.console.task, budget=Budget(max_cost),
                           dreamfile=str(self.workflow.dreamfile), config=self.options.config)
        scheduler = factory(planner, runner, self.console, jobs, keep_going, resources, run_id, jobserver,
                            self.workflow.config)
        try:
            summary = scheduler.run(decisions)
        finally:
            for model in self.workflow.models:
                model.close()
        status = "interrupted" if summary.interrupted else "failed" if summary.failed else "ok"
        failure = (summary.failed[0][0], summary.failed[0][1].one_line()) if summary.failed else None
        state.finish_run(run_id, status, len(summary.ran), len(summary.failed), failure)
        if not summary.interrupted:
            from dreammake.cards.render import write_built_cards

            try:
                write_built_cards(planner.graph, state, summary.ran + summary.cut_off)
            except (DreamError, OSError) as exc:  # a card never fails a finished build
                self.console.line("warn", f"cards not written: {exc}")
        return summary

    def write_depfiles(self, graph: Graph) -> None:
        """`TARGET.d` beside each requested target: its source files and the Dreamfile, in make format."""
        from dreammake.makeint import depfile, sources_of

        dreamfile = os.path.relpath(self.workflow.dreamfile)
        for job in graph.requested:
            if job.rule.is_phony:
                continue
            path = job.output_paths[0]
            with open(path + ".d", "w") as f:
                f.write(depfile(path, [*sources_of(graph, job), dreamfile, *self.workflow.files[1:]]))

    def clean(self, graph: Graph) -> list[str]:
        """Remove the outputs of the graph's jobs that the state records as built by dreammake, with their
        cards, and forget their records. Anything else at an output path (a file the user put there) is kept."""
        from dreammake.confine import OutsideProject, confine
        from dreammake.targets import target_for

        built = self.state.targets()
        removed = []
        for job in graph.jobs:
            for path in job.output_paths:
                if path not in built:
                    if os.path.lexists(path):
                        self.console.line("warn", f"kept {path}: dreammake did not build it")
                    continue
                try:
                    confine(path, str(self.root))
                except OutsideProject as exc:  # a record from before outputs were confined
                    self.console.line("warn", f"kept {path}: {exc}")
                    continue
                if target_for(path).remove():
                    removed.append(path)
        self.state.forget_targets([p for j in graph.jobs for p in j.output_paths if p in built])
        return removed


def parse_assignments(items: tuple[str, ...] | list[str], what: str) -> dict[str, Any]:
    """`key=value` pairs from the command line; values are JSON when they parse (numbers, lists), else text."""
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DreamError(f"{what} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
