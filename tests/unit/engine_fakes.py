"""In-memory stand-ins for the engine's unit tests: a dict-backed state, a scripted launcher, a fake jobserver,
and helpers to load a Dreamfile, plan it and build it without DuckDB or the CLI."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from dreammake.console import Console
from dreammake.dsl import Workflow, load
from dreammake.errors import DreamError
from dreammake.executor import Finished, LocalExecutor, Outcome, Summary
from dreammake.graph import Graph, Resolver, default_targets
from dreammake.planner import Decision, Planner
from dreammake.runner import JobRunner
from dreammake.state import Signature, TargetRecord


class FakeState:
    """The parts of `dreammake.state.State` the planner, hasher and runner use, kept in dicts."""

    def __init__(self) -> None:
        self.read_only = False
        self.files: dict[str, tuple[Signature, str]] = {}
        self.rows: dict[str, tuple[str, str, str | None]] = {}
        self.saved: dict[str, TargetRecord] = {}
        self.commits: list[list[str]] = []  # paths of each record_targets call
        self.flushes = 0

    def file_hashes(self) -> dict[str, tuple[Signature, str]]:
        return self.files

    def remember_file(self, path: str, sig: Signature, content_hash: str) -> None:
        self.files[path] = (sig, content_hash)

    def flush_files(self) -> None:
        self.flushes += 1

    def targets(self) -> dict[str, tuple[str, str, str | None]]:
        return self.rows

    def components(self, path: str) -> dict[str, str]:
        record = self.saved.get(path)
        return dict(record.components) if record is not None else {}

    def record_targets(self, records: list[TargetRecord]) -> None:
        self.commits.append([r.path for r in records])
        for r in records:
            self.saved[r.path] = r
            self.rows[r.path] = (r.fingerprint, r.content_hash, r.data_hash)


def quiet_console() -> Console:
    """A console writing to memory (`.stream.getvalue()`)."""
    return Console(stream=io.StringIO())


def dreamfile(root: Path, text: str, config: dict[str, Any] | None = None) -> Workflow:
    """Write a Dreamfile in `root` (the current folder) and load it."""
    path = root / "Dreamfile"
    path.write_text(textwrap.dedent(text))
    return load(str(path), config)


def resolve(workflow: Workflow, targets: list[str] | None = None) -> Graph:
    """The job DAG of the requested (default) targets."""
    return Resolver(workflow).resolve(targets or default_targets(workflow))


def plan(workflow: Workflow, state: FakeState) -> tuple[Planner, dict[str, Decision]]:
    """A planner over the default targets and its decisions by job name."""
    planner = Planner(resolve(workflow), state)  # type: ignore[arg-type]
    return planner, {d.job.name: d for d in planner.plan()}


def reasons(workflow: Workflow, state: FakeState) -> dict[str, str | None]:
    """Job name → reason code of the plan (None: up to date)."""
    return {name: d.reason for name, d in plan(workflow, state)[1].items()}


def build(root: Path, workflow: Workflow, state: FakeState, jobs: int = 1, keep_going: bool = False) -> Summary:
    """Plan and run the default targets with the local executor (real runner, fake state)."""
    planner, decisions = plan(workflow, state)
    runner = JobRunner(planner, str(root))
    executor = LocalExecutor(planner, runner, quiet_console(), jobs, keep_going)
    return executor.run(list(decisions.values()))


class FakeJobServer:
    """make's jobserver with `tokens` tokens beyond the implicit slot."""

    def __init__(self, tokens: int):
        self.free = tokens
        self.closed = False

    def try_acquire(self) -> bool:
        if self.free == 0:
            return False
        self.free -= 1
        return True

    def release(self) -> None:
        self.free += 1

    def close(self) -> None:
        self.closed = True


class ScriptedLauncher:
    """A launcher whose jobs end in start order, `batch` per `wait`, with the outcome `outcomes[name]` gives
    (records by default; a DreamError fails the job, `start_errors` makes `start` refuse it). It records the
    order of starts and what ran at once; it asserts only that `wait` is asked about exactly the running jobs."""

    def __init__(self, outcomes: dict[str, Outcome] | None = None, start_errors: set[str] | None = None,
                 gpus: float = 0, interrupt_after: int | None = None, batch: int = 1):
        self.outcomes = outcomes or {}
        self.start_errors = start_errors or set()
        self.gpus = gpus
        self.interrupt_after = interrupt_after  # raise KeyboardInterrupt in the wait after this many ends
        self.batch = batch  # jobs that end in one wait
        self.started: list[str] = []
        self.running: list[Decision] = []
        self.ended = 0
        self.most_at_once = 0
        self.most_gpus = 0.0
        self.asked_limits: list[set[str]] = []
        self.interrupted = False
        self.closed: bool | None = None
        self.unfinished_at_interrupt: list[str] = []
        self.given: dict[str, tuple[str, ...] | None] = {}  # job -> the GPUs it was started on

    def default_limits(self, needed: set[str]) -> dict[str, float]:
        self.asked_limits.append(set(needed))
        return {"gpus": self.gpus} if "gpus" in needed else {}

    def devices(self, limits: dict[str, float]) -> list[str] | None:
        return [str(i) for i in range(int(limits["gpus"]))] if limits.get("gpus") else None

    def open(self) -> None:
        pass

    def start(self, decision: Decision, gpus: tuple[str, ...] | None = None) -> Hashable:
        name = decision.job.name
        if name in self.start_errors:
            raise DreamError(f"rule {name!r}: refused")
        self.started.append(name)
        self.given[name] = gpus
        self.running.append(decision)
        self.most_at_once = max(self.most_at_once, len(self.running))
        gpus = sum(float(d.job.rule.resources.get("gpus", 0)) for d in self.running)
        self.most_gpus = max(self.most_gpus, gpus)
        return name

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        if self.interrupt_after is not None and self.ended >= self.interrupt_after:
            raise KeyboardInterrupt
        assert set(handles) == {d.job.name for d in self.running}
        ended, self.running = self.running[:self.batch], self.running[self.batch:]
        self.ended += len(ended)
        return [(d.job.name, self.outcomes.get(d.job.name, [record(d)])) for d in ended]

    def interrupt(self) -> list[Finished]:
        self.interrupted = True
        self.unfinished_at_interrupt = [d.job.name for d in self.running]
        done, self.running = self.running[:1], self.running[1:]  # the first one had finished anyway
        return [Finished(d, [record(d)], 0.0) for d in done]

    def close(self, interrupted: bool) -> None:
        self.closed = interrupted


def record(d: Decision) -> TargetRecord:
    """A made-up record for each output of a decision."""
    return TargetRecord(d.job.output_paths[0], d.job.rule.name, d.fingerprint or "fp", {}, "hash", None, 0, None)


class FakePlanner:
    """What the scheduler asks of a planner: `decide` (cutoff for names in `unchanged`), `record`, `commit`."""

    def __init__(self, unchanged: set[str] | None = None):
        self.unchanged = unchanged or set()
        self.decided: list[str] = []
        self.pending: list[TargetRecord] = []
        self.committed: list[list[str]] = []

    def decide(self, job: Any) -> Decision:
        self.decided.append(job.name)
        return Decision(job, None if job.name in self.unchanged else "input", "input changed", "fp")

    def record(self, records: list[TargetRecord]) -> None:
        self.pending.extend(records)

    @property
    def uncommitted(self) -> bool:
        return bool(self.pending)

    def commit(self) -> None:
        self.committed.append([r.path for r in self.pending])
        self.pending = []
