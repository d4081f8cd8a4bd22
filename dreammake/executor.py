"""Executors: run stale jobs in dependency order (`Scheduler`), here on a pool of worker threads.

The coordinating (main) thread is the only one that writes the state database; workers
return records. Finished outputs are committed at least every quarter second (and at once
after any job that took longer), so an interrupted or killed run keeps them; outputs placed
but not yet committed when a run is killed are adopted by the next run (`dreammake.adopt`). Heavy
actions (generation, training) release the GIL or run in their own processes, so threads
are enough to keep `-j N` busy. `dreammake.slurm.SlurmExecutor` reuses the same loop.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from dreammake.console import Console
from dreammake.errors import DreamError
from dreammake.gpus import detect_gpus
from dreammake.makeint import JobServer
from dreammake.planner import Decision, Planner
from dreammake.runner import JobRunner
from dreammake.state import TargetRecord

FLUSH_EVERY_S = 0.25  # a DuckDB commit costs ~20 ms here; a job that took longer than this is flushed at once


@dataclass
class Summary:
    """What a run did."""

    ran: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)  # stale by plan, unchanged after their inputs were rebuilt
    failed: list[tuple[str, DreamError]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not run because an upstream job failed
    interrupted: bool = False


Outcome = list[TargetRecord] | DreamError  # how a job ended: its records, or its error


class Scheduler:
    """Runs stale jobs in dependency order with at most `jobs` at once, within the resource limits
    (and make's jobserver), with early cutoff, keep-going and Ctrl-C handling.

    Subclasses say how a job starts (`_start`, returning a handle) and how its end is learned
    (`_wait`); records are written to the state database by this (the coordinating) thread only.
    """

    def __init__(self, planner: Planner, runner: JobRunner, console: Console, jobs: int = 1,
                 keep_going: bool = False, resources: dict[str, float] | None = None, run_id: int | None = None,
                 jobserver: JobServer | None = None):
        self.jobserver = jobserver
        self.planner = planner
        self.runner = runner
        self.console = console
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.limits = dict(resources or {})
        self.run_id = run_id
        self._pending_records: list[TargetRecord] = []
        self._last_flush = time.monotonic()

    # -- what subclasses provide ---------------------------------------------------------------
    def _default_limits(self, needed: set[str]) -> dict[str, float]:
        """Limits for resources the rules use and the command line did not limit."""
        return {}

    def _open(self) -> None:
        """Called once before the first job starts."""

    def _start(self, decision: Decision) -> Hashable:
        """Start a job; returns a handle that `_wait` reports when the job ends."""
        raise NotImplementedError

    def _wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        """Wait up to `timeout` s for running jobs to end: their records, or the error they failed with."""
        raise NotImplementedError

    def _interrupt(self, summary: Summary) -> None:
        """Ctrl-C: stop running jobs and remove their temp outputs."""
        self.runner.cancel.set()
        self.runner.cleanup()

    def _close(self, interrupted: bool) -> None:
        """Called once at the end of a run."""

    # -- the loop ------------------------------------------------------------------------------
    def _capacity(self, decisions: list[Decision]) -> dict[str, float]:
        needed = {k for d in decisions for k, v in d.job.rule.resources.items() if isinstance(v, (int, float)) and v}
        limits = {**self._default_limits(needed - set(self.limits)), **self.limits}
        for d in decisions:
            for name, amount in d.job.rule.resources.items():
                if isinstance(amount, (int, float)) and name in limits and amount > limits[name]:
                    raise DreamError(f"rule {d.job.rule.name!r} needs {name}={amount} but only {limits[name]:g}"
                                     " are available", d.job.rule.where,
                                     hint=f"pass --resources {name}=N or change the rule's resources")
        return limits

    def run(self, decisions: list[Decision]) -> Summary:
        """Run the stale decisions (already in topological order)."""
        stale = [d for d in decisions if d.stale and not d.job.rule.is_phony]
        summary = Summary()
        if not stale:
            return summary
        capacity = self._capacity(stale)
        in_use: dict[str, float] = {k: 0.0 for k in capacity}
        members = {id(d.job) for d in stale}
        waiting_on = {id(d.job): sum(1 for dep in d.job.deps if id(dep) in members) for d in stale}
        dependants: dict[int, list[Decision]] = {}
        for d in stale:
            for dep in d.job.deps:
                if id(dep) in members:
                    dependants.setdefault(id(dep), []).append(d)
        ready = [d for d in stale if waiting_on[id(d.job)] == 0]
        running: dict[Hashable, tuple[Decision, float]] = {}
        tokens: dict[Hashable, bool] = {}  # which running jobs hold a jobserver token
        stop = False
        self.console.start_progress(len(stale))
        self._open()
        try:
            while ready or running:
                waiting_for_token = False
                while ready and not stop and len(running) < self.jobs:
                    d = self._next_fitting(ready, capacity, in_use)
                    if d is None:
                        break
                    token = False
                    if running and self.jobserver is not None:  # beyond our implicit slot, make must agree
                        token = self.jobserver.try_acquire()
                        if not token:
                            waiting_for_token = True
                            break
                    ready.remove(d)
                    fresh = self.planner.decide(d.job)  # inputs are final now: real hashes, early cutoff
                    if not fresh.stale:
                        if token:
                            self.jobserver.release()
                        summary.cut_off.append(d.job.name)
                        self.console.line("skip", f"unchanged {d.job.name} (its inputs' content did not change)")
                        self._release_dependants(d, dependants, waiting_on, ready)
                        self.console.advance()
                        continue
                    self.console.line("run", f"run {d.job.name}: {fresh.detail}")
                    try:
                        handle = self._start(fresh)
                    except DreamError as exc:  # e.g. sbatch refused the job
                        if token:
                            self.jobserver.release()
                        self.console.advance()
                        stop = self._failed(d, exc, dependants, summary) or stop
                        continue
                    for name, amount in d.job.rule.resources.items():
                        if name in in_use:
                            in_use[name] += amount
                    running[handle] = (fresh, time.monotonic())
                    tokens[handle] = token
                if not running:
                    break
                timeout = 0.05 if waiting_for_token else FLUSH_EVERY_S
                for handle, outcome in self._wait(list(running), timeout):
                    d, started = running.pop(handle)
                    if tokens.pop(handle) and self.jobserver is not None:
                        self.jobserver.release()
                    for name, amount in d.job.rule.resources.items():
                        if name in in_use:
                            in_use[name] -= amount
                    self.console.advance()
                    if isinstance(outcome, DreamError):
                        stop = self._failed(d, outcome, dependants, summary) or stop
                        continue
                    self._finished(d, outcome, started, summary)
                    self._release_dependants(d, dependants, waiting_on, ready)
                self._maybe_flush()
        except KeyboardInterrupt:
            summary.interrupted = True
            self._interrupt(summary)
        finally:
            self.console.stop_progress()
            if self.jobserver is not None:
                self.jobserver.close()
            self._flush()
            self._close(summary.interrupted)
        summary.skipped.extend(d.job.name for d in ready if stop)
        return summary

    def _failed(self, d: Decision, exc: DreamError, dependants: dict[int, list[Decision]], summary: Summary) -> bool:
        """A job failed: report it and skip what depends on it. True when the run should stop."""
        summary.failed.append((d.job.name, exc))
        self.console.error(exc.one_line())
        if self.console.debug and exc.__cause__ is not None:
            import traceback

            traceback.print_exception(exc.__cause__)
        self._skip_downstream(d, dependants, summary)
        return not self.keep_going

    def _finished(self, d: Decision, records: list[TargetRecord], started: float, summary: Summary) -> None:
        """A job succeeded: keep its records (flushed at once when it was slow) and say so."""
        self._pending_records.extend(records)
        if time.monotonic() - started >= FLUSH_EVERY_S:
            self._flush()
        summary.ran.append(d.job.name)
        rows = sum(r.rows or 0 for r in records)
        extra = f", {rows:,} rows" if any(r.rows is not None for r in records) else ""
        self.console.line("done", f"done {d.job.name} ({time.monotonic() - started:.1f}s{extra})")

    @staticmethod
    def _next_fitting(ready: list[Decision], capacity: dict[str, float], in_use: dict[str, float]) -> Decision | None:
        for d in ready:
            if all(in_use.get(k, 0) + v <= capacity[k] for k, v in d.job.rule.resources.items() if k in capacity):
                return d
        return None

    def _release_dependants(self, d: Decision, dependants: dict[int, list[Decision]], waiting_on: dict[int, int],
                            ready: list[Decision]) -> None:
        for child in dependants.get(id(d.job), ()):
            waiting_on[id(child.job)] -= 1
            if waiting_on[id(child.job)] == 0:
                ready.append(child)

    def _skip_downstream(self, d: Decision, dependants: dict[int, list[Decision]], summary: Summary) -> None:
        stack = list(dependants.get(id(d.job), ()))
        seen: set[int] = set()
        while stack:
            child = stack.pop()
            if id(child.job) in seen:
                continue
            seen.add(id(child.job))
            summary.skipped.append(child.job.name)
            stack.extend(dependants.get(id(child.job), ()))
        # they never become ready: the failed job never releases them

    def _maybe_flush(self) -> None:
        if (self._pending_records or self.planner.adopted) and time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self._flush()

    def _flush(self) -> None:
        records, self._pending_records = self._pending_records, []
        self.planner.state.record_targets(records + self.planner.take_adopted())
        self.planner.state.flush_files()
        self._last_flush = time.monotonic()


class LocalExecutor(Scheduler):
    """Runs jobs on a pool of threads in this process, within the declared resource limits."""

    def _default_limits(self, needed: set[str]) -> dict[str, float]:
        return {"gpus": detect_gpus()} if "gpus" in needed else {}

    def _open(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="dreammake-job")

    def _start(self, decision: Decision) -> Hashable:
        return self._pool.submit(self.runner.run, decision, self.run_id)

    def _wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        futures: list[Future[list[TargetRecord]]] = [h for h in handles if isinstance(h, Future)]
        if not futures:
            time.sleep(timeout)
            return []
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return [(fut, _outcome(fut)) for fut in done]

    def _close(self, interrupted: bool) -> None:
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)


def _outcome(fut: Future[list[TargetRecord]]) -> Outcome:
    try:
        return fut.result()
    except DreamError as exc:
        return exc
