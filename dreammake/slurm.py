"""The Slurm executor: `dreammake --executor slurm -j 100` submits each job with sbatch.

Each job becomes `sbatch --wrap "python -m dreammake.worker SPEC.json"` with the rule's
resources (`gpus`, `cpus`, `mem`, `time`, `partition`, `account`, extra `sbatch_args`) and the
Dreamfile's `config["slurm_args"]`. The worker loads the Dreamfile, rebuilds that one job (no
DAG resolution), runs the action into the temp outputs named in the spec and writes a result
file; it never opens the state database. This process polls `squeue` for all its jobs in one
call at a steady interval, places finished outputs (early cutoff), records them in the state
database, and cancels its jobs on Ctrl-C. Files live in `.dreammake/slurm/run-N/`: per job a
spec and a result (removed once the job succeeded) and the Slurm log, whose path and last lines
a failure reports. A failed job can be rerun by hand with `python -m dreammake.worker SPEC.json`.

Jobs that need the state database stay in this process: those whose action says `needs_state`
(prompt rules: they read and commit the LLM row cache). They run on threads as with the local
executor and count against `-j`. A prompt rule whose model runs locally (transformers, vLLM) sends
its generation to the cluster all the same: its misses go to one Slurm array job of `shards` tasks
(`SlurmWorkers`, `python -m dreammake.gen_worker`, see `dreammake.llm.remote`), each with the rule's
resources, while the job here follows their spools into the row cache.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from dreammake.actions import is_action
from dreammake.config_env import with_config
from dreammake.console import Console
from dreammake.errors import DreamError, JobFailed
from dreammake.executor import Finished, Outcome, Scheduler, ThreadLauncher
from dreammake.fingerprint import digest
from dreammake.graph import Job
from dreammake.jsonfiles import read_json, write_json
from dreammake.makeint import JobServer
from dreammake.planner import Decision, Planner
from dreammake.runner import JobOutput, JobRunner
from dreammake.state import STATE_DIR

POLL_S = 2.0  # one squeue call for all jobs this often: cheap for slurmctld, quick to notice the end of a job
LOG_TAIL_LINES = 12
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}


def needs_state(action: Any) -> bool:
    """Whether a rule's action must run in the coordinating process (it uses the state database)."""
    return is_action(action) and action.needs_state


def sbatch_options(resources: dict[str, Any]) -> list[str]:
    """sbatch options for a rule's resources.

    `nodes: N` > 1 → `--nodes=N --ntasks-per-node=1` (a trainer starts its processes on each node itself);
    `gpus: N` → `--gres=gpu:N` (per node); `cpus: N` (else `processes: N` > 1) → `--cpus-per-task=N`;
    `mem` (MB as a number, or text like "16G"), `time` (minutes, or "HH:MM:SS"), `partition`,
    `account` as such; `sbatch_args` (a list, or one string) is appended verbatim.
    """
    opts = []
    nodes = int(resources.get("nodes") or 1)
    if nodes > 1:
        opts += [f"--nodes={nodes}", "--ntasks-per-node=1"]
    gpus = int(resources.get("gpus") or 0)
    if gpus:
        opts.append(f"--gres=gpu:{gpus}")
    cpus = int(resources.get("cpus") or 0) or int(resources.get("processes") or 0)
    if cpus > 1 or resources.get("cpus"):
        opts.append(f"--cpus-per-task={cpus}")
    for name in ("mem", "time", "partition", "account"):
        value = resources.get(name)
        if value not in (None, ""):
            opts.append(f"--{name}={value}")
    return opts + split_args(resources.get("sbatch_args"))


def split_args(value: str | Sequence[str] | None) -> list[str]:
    """Extra sbatch arguments given as one shell-quoted string or as a list."""
    if not value:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


class SlurmJobFailed(JobFailed):
    """A job that failed on Slurm: the message names the job and its log; the log's last lines follow."""

    def __init__(self, message: str, where: str | None, log: str, hint: str | None = None):
        self.log = log
        self.tail = log_tail(log)
        super().__init__(message, where, hint)

    def one_line(self) -> str:
        text = super().one_line()
        if self.tail:
            text += "\n" + "\n".join(f"  | {line}" for line in self.tail)
        return text


@dataclass(eq=False)  # a handle for the scheduler: hashed by identity
class SlurmJob:
    """A submitted job and the files it works with."""

    job_id: str
    decision: Decision
    temps: dict[str, str]
    spec: str
    result: str
    log: str
    submitted: float
    state: str = "PENDING"


class SlurmLauncher:
    """Starts jobs with sbatch and learns their end from squeue (see the module docstring); jobs that need the
    state database run on a `ThreadLauncher` in this process."""

    def __init__(self, runner: JobRunner, console: Console, jobs: int = 1, run_id: int | None = None,
                 sbatch_args: str | Sequence[str] | None = None, poll_s: float = POLL_S,
                 python: str = sys.executable):
        self.runner = runner
        self.console = console
        self.run_id = run_id
        self.local = ThreadLauncher(runner, jobs, run_id, workers=lambda job, gpus: SlurmWorkerStarter(self, job))
        self.sbatch_args = split_args(sbatch_args)
        self.poll_s = poll_s
        self.python = python
        self.folder = ""
        self._submitted: dict[str, SlurmJob] = {}  # job id -> job, until it ends
        self._next_poll = 0.0

    def default_limits(self, needed: set[str]) -> dict[str, float]:
        """None: Slurm enforces each job's request; `--resources` still caps what is in flight."""
        return {}

    def devices(self, limits: dict[str, float]) -> list[str] | None:
        """None: Slurm gives each job its GPUs."""
        return None

    def open(self) -> None:
        """Start the local thread pool and make this run's folder for specs, results and logs."""
        self.local.open()
        run = f"run-{self.run_id}" if self.run_id is not None else time.strftime("run-%Y%m%d-%H%M%S")
        self.folder = os.path.join(self.runner.root, STATE_DIR, "slurm", run)
        os.makedirs(self.folder, exist_ok=True)

    def start(self, decision: Decision, gpus: tuple[str, ...] | None = None) -> Hashable:
        """Submit the job with sbatch (a job that needs the state database runs here instead)."""
        if needs_state(decision.job.rule.action):
            return self.local.start(decision)
        return self._submit(decision)

    def wait(self, handles: list[Hashable], timeout: float) -> list[tuple[Hashable, Outcome]]:
        """Local jobs that end within `timeout`; Slurm jobs that ended, asked of squeue once per `poll_s`."""
        remote = [h for h in handles if isinstance(h, SlurmJob)]
        local = [h for h in handles if not isinstance(h, SlurmJob)]
        if not remote:
            return self.local.wait(local, timeout)
        done = self.local.wait(local, max(0.0, min(timeout, self._next_poll - time.monotonic())))  # sleeps if none
        if time.monotonic() >= self._next_poll:
            done += [(job, self._ingest(job)) for job in self._poll(remote)]
            self._next_poll = time.monotonic() + self.poll_s
        return done

    def interrupt(self) -> list[Finished]:
        """Cancel every submitted job, keeping the outputs of those that had already finished; stop local ones."""
        finished = []
        for job in self._cancel_all():
            if _read_result(job.result).get("ok"):
                outcome = self._ingest(job)
                if not isinstance(outcome, DreamError):
                    finished.append(Finished(job.decision, outcome, job.submitted))
        cancel_generation_arrays()
        return finished + self.local.interrupt()

    def close(self, interrupted: bool) -> None:
        """Cancel what is left (only after an unexpected error: leave nothing running on the cluster)."""
        self._cancel_all()
        self.local.close(interrupted)

    def _cancel_all(self) -> list[SlurmJob]:
        jobs = list(self._submitted.values())
        self._submitted.clear()
        if jobs:
            self.console.line("warn", f"cancelling {len(jobs)} Slurm job(s)…")
            subprocess.run(["scancel", *[j.job_id for j in jobs]], capture_output=True, check=False)
        return jobs

    # -- submitting ----------------------------------------------------------------------------
    def _submit(self, decision: Decision) -> SlurmJob:
        job = decision.job
        name = f"{job.rule.name}-{digest(job.name)[:12]}"
        spec_path = os.path.join(self.folder, f"{name}.spec.json")
        result = os.path.join(self.folder, f"{name}.result.json")
        log = os.path.join(self.folder, f"{name}.log")
        for stale in (result, log):
            if os.path.exists(stale):
                os.remove(stale)
        temps = self.runner.prepare(job)
        write_json(spec_path, job_spec(self.runner, decision, temps, result))
        command = ["sbatch", "--parsable", f"--job-name=dm-{job.rule.name}", f"--output={log}",
                   f"--chdir={self.runner.root}", "--export=ALL", *sbatch_options(job.rule.resources),
                   *self.sbatch_args, "--wrap", shlex.join([self.python, "-m", "dreammake.worker", spec_path])]
        # the --config values go in the job's environment, not in the spec file (they may be credentials)
        proc = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=with_config(os.environ, self.runner.config))
        if proc.returncode != 0:
            self.runner.release(temps)
            raise DreamError(f"rule {job.rule.name!r}: sbatch failed: {proc.stderr.strip() or proc.stdout.strip()}",
                             job.rule.where, hint="check the rule's resources and config['slurm_args']")
        job_id = proc.stdout.strip().split(";")[0]
        self.console.line("info", f"submitted {job.name} as Slurm job {job_id}")
        slurm_job = SlurmJob(job_id, decision, temps, spec_path, result, log, time.monotonic())
        self._submitted[job_id] = slurm_job
        return slurm_job

    # -- learning that jobs ended ----------------------------------------------------------------
    def _poll(self, jobs: list[SlurmJob]) -> list[SlurmJob]:
        """One squeue call for all jobs; returns those that ended (updating `state`)."""
        states = squeue_states([j.job_id for j in jobs])
        if states is None:
            self.console.line("warn", f"squeue failed; asking again in {self.poll_s:g}s")
            return []
        ended = []
        for job in jobs:
            state = states.get(job.job_id)
            if state is None:  # no longer known to slurmctld (purged after MinJobAge)
                state = "COMPLETED" if _read_result(job.result).get("ok") else "UNKNOWN"
            if state == "RUNNING" and job.state == "PENDING":
                self.console.line("info", f"{job.decision.job.name} started (Slurm job {job.job_id})")
            job.state = state
            if state not in ACTIVE:
                ended.append(job)
        return ended

    def _ingest(self, job: SlurmJob) -> Outcome:
        """Read an ended job's result: place its outputs and return their records, or the failure."""
        self._submitted.pop(job.job_id, None)
        rule = job.decision.job.rule
        result = _read_result(job.result)
        try:
            if result.get("ok"):
                records = self.runner.place(job.decision, job.temps, JobOutput.from_json(result), self.run_id)
                for path in (job.spec, job.result):  # the log stays; a failed job keeps all three
                    with contextlib.suppress(OSError):
                        os.remove(path)
                return records
            slurm = f"Slurm job {job.job_id}, log: {os.path.relpath(job.log)}"
            if "error" in result:
                message = f"{result['error']} ({slurm})"
            else:
                message = f"rule {rule.name!r}: Slurm job {job.job_id} ended {job.state} without a result ({slurm})"
            return SlurmJobFailed(message, result.get("where") or rule.where, job.log, result.get("hint"))
        except DreamError as exc:
            return exc
        finally:
            self.runner.release(job.temps)


class SlurmWorkerStarter:
    """Starts a prompt rule's generation workers as one Slurm array job (`WorkerStarter`)."""

    always = True  # the login node has no GPU: local models generate on the nodes even with one shard

    def __init__(self, launcher: SlurmLauncher, job: Job):
        self.launcher = launcher
        self.job = job

    def start(self, folder: str, shards: int) -> SlurmWorkers:
        """`sbatch --array=0-(N-1)` with the rule's resources per task; logs in `FOLDER/shard-<i>.log`."""
        launcher, rule = self.launcher, self.job.rule
        resources = {k: v for k, v in rule.resources.items() if k != "shards"}
        command = ["sbatch", "--parsable", f"--array=0-{shards - 1}", f"--job-name=dm-gen-{rule.name}",
                   f"--output={os.path.join(folder, 'shard-%a.log')}", f"--chdir={launcher.runner.root}",
                   "--export=ALL", *sbatch_options(resources), *launcher.sbatch_args,
                   "--wrap", shlex.join([launcher.python, "-m", "dreammake.gen_worker", folder])]
        proc = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=with_config(os.environ, launcher.runner.config))
        if proc.returncode != 0:
            raise DreamError(f"rule {rule.name!r}: sbatch failed for its generation workers: "
                             f"{proc.stderr.strip() or proc.stdout.strip()}", rule.where,
                             hint="check the rule's resources and config['slurm_args']")
        job_id = proc.stdout.strip().split(";")[0]
        launcher.console.line("info", f"{self.job.name}: generation on {shards} worker(s), Slurm job {job_id}")
        return SlurmWorkers(job_id, folder, shards, launcher.poll_s)


_ARRAYS: set[str] = set()  # generation array jobs not yet stopped: cancelled when this process exits at the latest


@atexit.register
def cancel_generation_arrays() -> None:
    """Cancel every generation array job still running (Ctrl-C: the run ends without waiting for its job threads)."""
    if _ARRAYS:
        subprocess.run(["scancel", *_ARRAYS], capture_output=True, check=False)
        _ARRAYS.clear()


class SlurmWorkers:
    """The tasks of a generation array job; what squeue says of them, asked at most once per `poll_s`."""

    def __init__(self, job_id: str, folder: str, shards: int, poll_s: float):
        _ARRAYS.add(job_id)
        self.job_id = job_id
        self.folder = folder
        self.shards = shards
        self.poll_s = poll_s
        self._ended: dict[int, str] = {}
        self._next_poll = 0.0

    def ended(self) -> dict[int, str]:
        """Tasks slurmctld reports ended (or no longer knows), with their state."""
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_s
            states = squeue_states([self.job_id], tasks=True)
            if states is not None:
                for shard in range(self.shards):
                    state = states.get(f"{self.job_id}_{shard}")  # (--array lists pending tasks one by one)
                    if state is None or state not in ACTIVE:
                        self._ended[shard] = state or "ENDED"
        return dict(self._ended)

    def log(self, shard: int) -> str:
        return os.path.join(self.folder, f"shard-{shard}.log")

    def stop(self, wait_s: float) -> None:
        """Wait up to `wait_s` for every task to end (they exit at the end marker), then cancel the array."""
        deadline = time.monotonic() + wait_s
        while len(self.ended()) < self.shards and time.monotonic() < deadline:
            time.sleep(min(self.poll_s, 0.5))
        if len(self._ended) < self.shards:
            subprocess.run(["scancel", self.job_id], capture_output=True, check=False)
        _ARRAYS.discard(self.job_id)


class SlurmExecutor(Scheduler):
    """A scheduler that runs jobs as Slurm batch jobs (see the module docstring); same contract as LocalExecutor."""

    def __init__(self, planner: Planner, runner: JobRunner, console: Console, jobs: int = 1,
                 keep_going: bool = False, resources: dict[str, float] | None = None, run_id: int | None = None,
                 jobserver: JobServer | None = None, *, sbatch_args: str | Sequence[str] | None = None,
                 poll_s: float = POLL_S, python: str = sys.executable):
        launcher = SlurmLauncher(runner, console, jobs, run_id, sbatch_args, poll_s, python)
        super().__init__(planner, console, launcher, jobs, keep_going, resources, jobserver)

    @classmethod
    def from_config(cls, config: dict[str, Any], *args: Any, **kwargs: Any) -> SlurmExecutor:
        """Built with the Dreamfile's `config["slurm_args"]` (extra sbatch arguments for every job)
        and `config["slurm_poll_s"]` (seconds between squeue calls, default 2)."""
        return cls(*args, sbatch_args=config.get("slurm_args"), poll_s=float(config.get("slurm_poll_s", POLL_S)),
                   **kwargs)


def job_spec(runner: JobRunner, decision: Decision, temps: dict[str, str], result: str) -> dict[str, Any]:
    """What `dreammake.worker` needs to rebuild and run one job (JSON-ready)."""
    job = decision.job
    return {
        "root": runner.root, "dreamfile": runner.dreamfile,
        "rule": job.rule.name, "wildcards": job.wildcards, "outputs": job.output_paths,
        "fingerprint": decision.fingerprint, "components": decision.components, "temps": temps,
        "input_hashes": {p: runner.planner.content_hash(p) for p in job.input_paths}, "result": result,
    }


def squeue_states(job_ids: list[str], tasks: bool = False) -> dict[str, str] | None:
    """Job id → state for the jobs slurmctld still knows (one squeue call); None when squeue failed. `tasks`: one
    entry per array task (`ID_I`)."""
    proc = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}",
                           "--format=%i|%T", *(["--array"] if tasks else [])], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        return {} if "Invalid job id" in proc.stderr else None  # {}: every one of them was purged
    states = {}
    for line in proc.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        states[job_id] = state.split()[0] if state else "UNKNOWN"
    return states


def log_tail(path: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file (empty when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _read_result(path: str) -> dict[str, Any]:
    return read_json(path) or {}
