"""Executors: run stale jobs in dependency order, in small parts.

* `ReadyQueue`: stale jobs whose upstream jobs have all ended well, in plan order; a finished job releases its
  dependants, a failed one names everything downstream (those never become ready).
* `Slots`: what may start now: at most `-j` jobs, within the resource limits (`gpus` auto-detected without
  importing torch), and beyond the first running job only with a token from make's jobserver.
* a `Launcher`: how a job starts and how its end is learned. `ThreadLauncher` runs jobs on a pool of threads in
  this process; `dreammake.slurm.SlurmLauncher` submits them with sbatch (and runs a few here on a ThreadLauncher).
* `Scheduler`: the loop over those parts with early cutoff, keep-going and Ctrl-C. `LocalExecutor` and
  `dreammake.slurm.SlurmExecutor` are schedulers built with their launcher.

The coordinating (main) thread is the only one that writes the state database: workers return records, which
the scheduler hands to the planner (`Planner.record`) and commits (`Planner.commit`) at least every quarter second
(and at once after any job that took longer), so an interrupted or killed run keeps them; outputs placed but not
yet committed when a run is killed are adopted by the next run (`dreammake.adopt`). Heavy actions (generation,
training) release the GIL or run in their own processes, so threads are enough to keep `-j N` busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dreammake.console import Console
from dreammake.errors import DreamError
from dreammake.gpus import detect_gpus, gpu_pool
from dreammake.makeint import JobServer
from dreammake.planner import Decision, Planner
from dreammake.runner import JobRunner
from dreammake.shard_workers import LocalStarter, stop_all
from dreammake.state import TargetRecord

if TYPE_CHECKING:
    from dreammake.graph import Job
    from dreammake.llm.remote import WorkerStarter

FLUSH_EVERY_S = 0.25  # a DuckDB commit costs ~20 ms here; a job that took longer than this is flushed at once
TOKEN_RETRY_S = 0.05  # how soon to ask make's jobserver again when it had no token
STOP_WAIT_S = 10.0  # after Ctrl-C, how long running jobs (told to stop) get to end before the run leaves


@dataclass
class Summary:
    """What a run did."""

    ran: list[str] = field(default_factory=list)
    cut_off: list[str] = field(default_factory=list)  # stale by plan, unchanged after their inputs were rebuilt
    failed: list[tuple[str, DreamError]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not run because an upstream job failed
    interrupted: bool = False


Outcome = list[TargetRecord] | DreamError  # how a job ended: its records, or its error


@dataclass(slots=True)
class Finished:
    """A job that ended well: its decision, its records and when it started (time.monotonic)."""

    decision: Decision
    records: list[TargetRecord]
    started: float


class Launcher(Protocol):
    """How jobs start and how their end is learned; the scheduler calls these from the main thread only."""

    def default_limits(self, needed: set[str]) -> dict[str, float]:
        """Limits for the resources in `needed` (used by rules, not limited on the command line)."""
        ...

    def devices(self, limits: dict[str, float]) -> list[str] | None:
        """The GPU ids to hand out to jobs within `limits` (None: this launcher assigns none)."""
        ...

    def open(self) -> None:
        """Called once before the first job starts."""
        ...

    def start(self, decision: Decision, gpus: tuple[str, ...] | None) -> Hashable:
        """Start a job on `gpus` (the GPUs it was given, if any); returns a handle that `wait` reports when it ends.
        A DreamError: it could not start."""
        ...

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        """Wait up to `timeout` s for running jobs to end: their records, or the error they failed with."""
        ...

    def interrupt(self) -> list[Finished]:
        """Ctrl-C: stop running jobs and remove their temp outputs; returns those that had finished anyway."""
        ...

    def close(self, interrupted: bool) -> None:
        """Called once at the end of a run."""
        ...


class ReadyQueue:
    """The stale jobs of a run: those ready to start (in plan order), and who waits on whom."""

    def __init__(self, stale: list[Decision]):
        members = {id(d.job) for d in stale}
        self._waiting: dict[int, int] = {}
        self._dependants: dict[int, list[Decision]] = {}
        for d in stale:
            deps = [dep for dep in d.job.deps if id(dep) in members]
            self._waiting[id(d.job)] = len(deps)
            for dep in deps:
                self._dependants.setdefault(id(dep), []).append(d)
        self.ready = [d for d in stale if self._waiting[id(d.job)] == 0]

    def __bool__(self) -> bool:
        return bool(self.ready)

    def first(self, fits: Callable[[Decision], bool]) -> Decision | None:
        """The first ready job for which `fits` holds (still in the queue), else None."""
        for d in self.ready:
            if fits(d):
                return d
        return None

    def remove(self, d: Decision) -> None:
        """Take a job off the queue (it starts, or is cut off)."""
        self.ready.remove(d)

    def finished(self, d: Decision) -> None:
        """A job ended well: its dependants whose other upstream jobs ended too become ready."""
        for child in self._dependants.get(id(d.job), ()):
            self._waiting[id(child.job)] -= 1
            if self._waiting[id(child.job)] == 0:
                self.ready.append(child)

    def downstream(self, d: Decision) -> list[str]:
        """Names of every job below a failed one; they never become ready (it never releases them)."""
        stack = list(self._dependants.get(id(d.job), ()))
        seen: set[int] = set()
        names = []
        while stack:
            child = stack.pop()
            if id(child.job) not in seen:
                seen.add(id(child.job))
                names.append(child.job.name)
                stack.extend(self._dependants.get(id(child.job), ()))
        return names


@dataclass(slots=True)
class Claim:
    """What a started job holds: its resources, the GPUs it was given, and whether it took a jobserver token."""

    resources: dict[str, float]
    token: bool = False
    devices: tuple[str, ...] = ()


_NOTHING = Claim({})  # shared by the claims of jobs that take neither resources nor a token (never mutated)


def claimed(resources: dict[str, Any]) -> dict[str, float]:
    """What a job holds of each numeric resource while it runs: its amounts, with `gpus` per shard (a prompt rule
    with `shards: N, gpus: G` holds N × G GPUs)."""
    amounts = {k: v for k, v in resources.items() if isinstance(v, (int, float)) and k != "shards"}
    if amounts.get("gpus"):
        amounts["gpus"] = amounts["gpus"] * max(1, int(resources.get("shards") or 1))
    return amounts


class Slots:
    """At most `jobs` at once, within `capacity` per resource; beyond the first running job, only with a token
    from make's jobserver (the first uses the implicit slot make gave this process). With `devices`, a job that
    claims `gpus` is given that many specific GPUs from the pool (the lowest free ids)."""

    def __init__(self, jobs: int, capacity: dict[str, float], jobserver: JobServer | None = None,
                 devices: list[str] | None = None):
        self.jobs = max(1, jobs)
        self.capacity = dict(capacity)
        self.in_use = {k: 0.0 for k in capacity}
        self.jobserver = jobserver
        self.busy = 0
        self.waiting_for_token = False  # make had no token free on the last claim
        self.free_devices = list(devices) if devices is not None else None

    def free(self) -> bool:
        """Whether fewer than `jobs` jobs hold a slot."""
        return self.busy < self.jobs

    def fits(self, d: Decision) -> bool:
        """Whether the job's resources fit beside those of the running jobs."""
        capacity = self.capacity
        if not capacity:
            return True
        return all(self.in_use[k] + v <= capacity[k] for k, v in claimed(d.job.rule.resources).items()
                   if k in capacity)

    def claim(self, d: Decision) -> Claim | None:
        """Take a slot (and the job's resources) for `d`; None when make's jobserver has no token for it."""
        token = False
        if self.busy and self.jobserver is not None:
            token = self.jobserver.try_acquire()
            if not token:
                self.waiting_for_token = True
                return None
        amounts = self._amounts(d)
        devices: tuple[str, ...] = ()
        if amounts.get("gpus") and self.free_devices is not None:
            count = int(amounts["gpus"])
            devices, self.free_devices = tuple(self.free_devices[:count]), self.free_devices[count:]
        claim = Claim(amounts, token, devices) if amounts or token else _NOTHING  # (most claim nothing but a slot)
        self.busy += 1
        for name, amount in amounts.items():
            self.in_use[name] += amount
        return claim

    def release(self, claim: Claim) -> None:
        """Give back what `claim` took."""
        self.busy -= 1
        for name, amount in claim.resources.items():
            self.in_use[name] -= amount
        if claim.token and self.jobserver is not None:
            self.jobserver.release()
        if claim.devices and self.free_devices is not None:
            self.free_devices = sorted([*self.free_devices, *claim.devices], key=_device_order)

    def close(self) -> None:
        """End of the run: let go of make's jobserver."""
        if self.jobserver is not None:
            self.jobserver.close()

    def _amounts(self, d: Decision) -> dict[str, float]:
        capacity = self.capacity
        return {k: v for k, v in claimed(d.job.rule.resources).items() if k in capacity} if capacity else {}


def _device_order(device: str) -> tuple[int, str]:
    return (int(device), "") if device.isdigit() else (1 << 30, device)


def numeric_resources(decisions: list[Decision]) -> set[str]:
    """The resources the jobs ask a (non-zero) amount of."""
    return {k for d in decisions for k, v in claimed(d.job.rule.resources).items() if v}


def check_limits(decisions: list[Decision], limits: dict[str, float]) -> None:
    """Fail before anything runs when a job needs more of a resource than the limit."""
    for d in decisions:
        for name, amount in claimed(d.job.rule.resources).items():
            if name in limits and amount > limits[name]:
                raise DreamError(f"rule {d.job.rule.name!r} needs {name}={amount} but only {limits[name]:g}"
                                 " are available", d.job.rule.where,
                                 hint=f"pass --resources {name}=N or change the rule's resources")


@dataclass(slots=True)
class _Running:
    decision: Decision
    started: float
    claim: Claim


@dataclass
class _Run:
    """The moving parts of one run."""

    queue: ReadyQueue
    slots: Slots
    summary: Summary
    running: dict[Hashable, _Running] = field(default_factory=dict)
    stop: bool = False  # a job failed without --keep-going: start nothing more


class Scheduler:
    """Runs stale jobs in dependency order with at most `jobs` at once, within the resource limits (and make's
    jobserver), with early cutoff, keep-going and Ctrl-C handling; `launcher` starts the jobs."""

    def __init__(self, planner: Planner, console: Console, launcher: Launcher, jobs: int = 1,
                 keep_going: bool = False, resources: dict[str, float] | None = None,
                 jobserver: JobServer | None = None):
        self.planner = planner
        self.console = console
        self.launcher = launcher
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.limits = dict(resources or {})
        self.jobserver = jobserver
        self._last_commit = time.monotonic()

    def run(self, decisions: list[Decision]) -> Summary:
        """Run the stale decisions (already in topological order)."""
        stale = [d for d in decisions if d.stale and not d.job.rule.is_phony]
        summary = Summary()
        if not stale:
            return summary
        run = _Run(ReadyQueue(stale), self._slots(stale), summary)
        self.console.start_progress(len(stale))
        self.launcher.open()
        try:
            self._loop(run)
        except KeyboardInterrupt:
            summary.interrupted = True
            for f in self.launcher.interrupt():
                self._finished(f.decision, f.records, f.started, summary)
        finally:
            self.console.stop_progress()
            run.slots.close()
            self._commit()
            self.launcher.close(summary.interrupted)
        if run.stop:
            summary.skipped.extend(d.job.name for d in run.queue.ready)
        return summary

    def _slots(self, stale: list[Decision]) -> Slots:
        needed = numeric_resources(stale) - set(self.limits)
        limits = {**self.launcher.default_limits(needed), **self.limits}
        check_limits(stale, limits)
        return Slots(self.jobs, limits, self.jobserver, self.launcher.devices(limits))

    def _loop(self, run: _Run) -> None:
        while run.queue or run.running:
            self._start_ready(run)
            if not run.running:
                return
            timeout = TOKEN_RETRY_S if run.slots.waiting_for_token else FLUSH_EVERY_S
            for handle, outcome in self.launcher.wait(list(run.running), timeout):
                self._ended(run, handle, outcome)
            self._maybe_commit()

    def _start_ready(self, run: _Run) -> None:
        """Start ready jobs while slots are free, in queue order (the first that fits)."""
        run.slots.waiting_for_token = False
        while run.queue and not run.stop and run.slots.free():
            d = run.queue.first(run.slots.fits)
            claim = None if d is None else run.slots.claim(d)
            if d is None or claim is None:
                return
            run.queue.remove(d)
            self._start(run, d, claim)

    def _start(self, run: _Run, d: Decision, claim: Claim) -> None:
        """Decide again with the inputs final (early cutoff), then start the job."""
        fresh = self.planner.decide(d.job)
        if not fresh.stale:
            run.slots.release(claim)
            run.summary.cut_off.append(d.job.name)
            self.console.line("skip", f"unchanged {d.job.name} (its inputs' content did not change)")
            run.queue.finished(d)
            self.console.advance()
            return
        self.console.line("run", f"run {d.job.name}: {fresh.detail}")
        try:
            handle = self.launcher.start(fresh, claim.devices or None)
        except DreamError as exc:  # e.g. sbatch refused the job
            run.slots.release(claim)
            self.console.advance()
            self._failed(run, d, exc)
            return
        run.running[handle] = _Running(fresh, time.monotonic(), claim)

    def _ended(self, run: _Run, handle: Hashable, outcome: Outcome) -> None:
        job = run.running.pop(handle)
        run.slots.release(job.claim)
        self.console.advance()
        if isinstance(outcome, DreamError):
            self._failed(run, job.decision, outcome)
            return
        self._finished(job.decision, outcome, job.started, run.summary)
        run.queue.finished(job.decision)

    def _failed(self, run: _Run, d: Decision, exc: DreamError) -> None:
        """A job failed: report it and skip what depends on it; without keep-going, start nothing more."""
        run.summary.failed.append((d.job.name, exc))
        self.console.error(exc.one_line())
        if self.console.debug and exc.__cause__ is not None:
            import traceback

            traceback.print_exception(exc.__cause__)
        run.summary.skipped.extend(run.queue.downstream(d))
        run.stop = run.stop or not self.keep_going

    def _finished(self, d: Decision, records: list[TargetRecord], started: float, summary: Summary) -> None:
        """A job succeeded: hand its records to the planner (committed at once when it was slow) and say so."""
        name = d.job.name
        self.planner.record(records)
        took = time.monotonic() - started
        if took >= FLUSH_EVERY_S:
            self._commit()
        summary.ran.append(name)
        rows = sum(r.rows or 0 for r in records)
        extra = f", {rows:,} rows" if any(r.rows is not None for r in records) else ""
        self.console.line("done", f"done {name} ({took:.1f}s{extra})")

    def _maybe_commit(self) -> None:
        if self.planner.uncommitted and time.monotonic() - self._last_commit >= FLUSH_EVERY_S:
            self._commit()

    def _commit(self) -> None:
        self.planner.commit()
        self._last_commit = time.monotonic()


class ThreadLauncher:
    """Runs jobs on a pool of `jobs` threads in this process (`JobRunner.run`: execute, then place). `workers(job,
    gpus)` gives a job the way to start its generation workers (by default: subprocesses of this process)."""

    def __init__(self, runner: JobRunner, jobs: int, run_id: int | None = None,
                 workers: Callable[[Job, tuple[str, ...] | None], WorkerStarter] | None = None):
        self.runner = runner
        self.jobs = max(1, jobs)
        self.run_id = run_id
        self.workers = workers or (lambda job, gpus: LocalStarter(runner.root, runner.config, gpus))
        self._pool: ThreadPoolExecutor | None = None
        self._running: set[Future[list[TargetRecord]]] = set()

    def default_limits(self, needed: set[str]) -> dict[str, float]:
        """The GPUs of this machine, when rules ask for GPUs."""
        return {"gpus": detect_gpus()} if "gpus" in needed else {}

    def devices(self, limits: dict[str, float]) -> list[str] | None:
        """A pool of as many GPU ids as the `gpus` limit (detected, or `--resources gpus=N`)."""
        return gpu_pool(int(limits["gpus"])) if limits.get("gpus") else None

    def open(self) -> None:
        """Start the thread pool."""
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="dreammake-job")

    def start(self, decision: Decision, gpus: tuple[str, ...] | None = None) -> Hashable:
        """Submit the job to the pool; its future is the handle."""
        assert self._pool is not None, "open() first"
        future = self._pool.submit(self.runner.run, decision, self.run_id, gpus, self.workers(decision.job, gpus))
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        """The futures among `handles` that end within `timeout` s (sleeps that long when there are none)."""
        futures: list[Future[list[TargetRecord]]] = [h for h in handles if isinstance(h, Future)]
        if not futures:
            time.sleep(timeout)
            return []
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return [(fut, _outcome(fut)) for fut in done]

    def interrupt(self) -> list[Finished]:
        """Tell running actions to stop, stop their generation workers and remove the temp outputs of unfinished
        jobs."""
        self.runner.cancel.set()
        stop_all()
        self.runner.cleanup()
        return []

    def close(self, interrupted: bool) -> None:
        """Shut the pool down. After Ctrl-C, give the running jobs (told to stop) up to STOP_WAIT_S to end, so that
        none is still inside the row cache when the state closes; then leave without them."""
        if self._pool is not None:
            if interrupted:
                wait(self._running, timeout=STOP_WAIT_S)
            self._pool.shutdown(wait=not interrupted, cancel_futures=True)


class LocalExecutor(Scheduler):
    """A scheduler that runs jobs on a pool of `-j N` threads in this process, within the resource limits."""

    def __init__(self, planner: Planner, runner: JobRunner, console: Console, jobs: int = 1,
                 keep_going: bool = False, resources: dict[str, float] | None = None, run_id: int | None = None,
                 jobserver: JobServer | None = None):
        super().__init__(planner, console, ThreadLauncher(runner, jobs, run_id), jobs, keep_going, resources,
                         jobserver)


def _outcome(fut: Future[list[TargetRecord]]) -> Outcome:
    try:
        return fut.result()
    except DreamError as exc:
        return exc
