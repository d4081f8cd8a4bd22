"""Runs one job in two halves.

`ActionRunner.execute` calls the action into temp outputs and writes its tables (no database,
no planner), so it also runs in a Slurm worker (`dreammake.worker`). `JobRunner.place`, in the
coordinating process, puts the finished outputs in place atomically (keeping the old file when
the content is unchanged: early cutoff) and returns the records for the state database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dreammake.actions import JobContext, function_arguments, is_action, work_path
from dreammake.adopt import write_marker
from dreammake.errors import DreamError, JobFailed
from dreammake.gpus import visible_gpus
from dreammake.graph import Job
from dreammake.planner import Decision, Planner
from dreammake.state import State, TargetRecord
from dreammake.tables import to_table, write_table
from dreammake.targets import TEMP_MARK, is_table_path, remove_path, target_for, temp_path

if TYPE_CHECKING:
    from dreammake.llm.remote import WorkerStarter


def output_keys(job: Job) -> list[str]:
    """Keys of a job's outputs: their names, or their positions."""
    return [name if name is not None else str(i) for i, (name, _) in enumerate(job.outputs)]


@dataclass
class JobOutput:
    """What the execute half produced: per output key (rows, data hash), both None when unknown."""

    outputs: dict[str, tuple[int | None, str | None]]
    stats: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    work_dir: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobOutput:
        outputs = {k: (v[0], v[1]) for k, v in data["outputs"].items()}
        return cls(outputs, dict(data.get("stats") or {}), float(data.get("duration_s") or 0.0),
                   data.get("work_dir") or "")


@contextlib.contextmanager
def job_failures(job: Job) -> Iterator[None]:
    """Turn any error of a job (other than a DreamError) into a JobFailed naming its rule."""
    try:
        yield
    except DreamError:
        raise
    except Exception as exc:
        raise JobFailed(f"rule {job.rule.name!r} failed: {type(exc).__name__}: {exc}", job.rule.where) from exc


class ActionRunner:
    """The execute half: temp outputs, work folder, the action call. Safe to call from worker threads."""

    def __init__(self, root: str, log: Any = print, progress: Any = None, budget: Any = None,
                 dreamfile: str = "", config: dict[str, Any] | None = None, state: State | None = None,
                 input_hash: Callable[[str], str | None] | None = None):
        self.budget = budget
        self.dreamfile = dreamfile
        self.config = dict(config or {})
        self.root = root
        self.log = log
        self.progress = progress
        self.state = state
        self.input_hash = input_hash or (lambda path: None)
        self.cancel = threading.Event()
        self._temps: set[str] = set()
        self._stale: dict[str, dict[str, list[str]]] = {}  # output folder -> target name -> temps of killed runs
        self._lock = threading.Lock()

    def work_path(self, job: Job) -> str:
        """Where the job's persistent scratch folder lives (`JobContext.work_dir` creates it on first use)."""
        return work_path(self.root, job)

    def prepare(self, job: Job) -> dict[str, str]:
        """Fresh temp paths for the job's outputs (folders created), by output key."""
        temps = {key: temp_path(path) for key, (_, path) in zip(output_keys(job), job.outputs)}
        for i, (key, (_, path)) in enumerate(zip(output_keys(job), job.outputs)):
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            for stale in self._stale_temps(path):
                remove_path(stale)
            if i in job.rule.folders:
                os.makedirs(temps[key])
        with self._lock:
            self._temps.update(temps.values())
        return temps

    def _stale_temps(self, path: str) -> list[str]:
        """Temp outputs of `path` left by a killed run. Each output folder is listed once per run (before
        this run puts temps of its own there): listing it per job made wide workflows quadratic."""
        folder, name = os.path.split(path)
        with self._lock:
            by_target = self._stale.get(folder)
            if by_target is None:
                by_target = self._stale[folder] = _temps_by_target(folder)
            return by_target.pop(name, [])

    def release(self, temps: dict[str, str]) -> None:
        """Remove what is left of a job's temp outputs."""
        for t in temps.values():
            remove_path(t)
        with self._lock:
            self._temps.difference_update(temps.values())

    def cleanup(self) -> None:
        """Remove temp outputs of interrupted jobs."""
        with self._lock:
            for t in list(self._temps):
                remove_path(t)
            self._temps.clear()

    def execute(self, job: Job, fingerprint: str, temps: dict[str, str], gpus: tuple[str, ...] | None = None,
                workers: WorkerStarter | None = None) -> JobOutput:
        """Call the action so that every output exists at its temp path; tables are written as Parquet.

        `gpus`: the GPUs the executor assigned the job; `workers`: how its generation may run in workers."""
        with job_failures(job):
            ctx = JobContext(job, temps, self.work_path(job), self.cancel, fingerprint,
                             state=self.state, log=self.log, progress=self.progress,
                             budget=self.budget, dreamfile=self.dreamfile, config=self.config, gpus=gpus,
                             workers=workers)
            started = time.perf_counter()
            try:
                produced = self._call(job, ctx)
            finally:
                ctx.close()
            outputs = self._write(job, fingerprint, temps, produced, ctx)
            return JobOutput(outputs, dict(ctx.stats), time.perf_counter() - started, ctx.work_path)

    # -- calling the action ------------------------------------------------------------------
    def _call(self, job: Job, ctx: JobContext) -> dict[str, Any]:
        action = job.rule.action
        if is_action(action):
            result = action.execute(ctx)
            return self._by_key(job, result, wrote_files=result is None)
        names, takes_all = function_arguments(action)
        kwargs: dict[str, Any] = {}
        inputs = [target_for(p).load(self.input_hash(p)) for _, p in job.inputs]
        if job.rule.input_shape == "single":
            kwargs["input"] = inputs[0]
        elif job.rule.input_shape == "list":
            kwargs["input"] = inputs
        elif job.rule.input_shape == "dict":
            kwargs.update({n: v for (n, _), v in zip(job.inputs, inputs)})
        wants_output = "output" in names
        if wants_output:
            keys = output_keys(job)
            if job.rule.output_shape == "single":
                kwargs["output"] = ctx.outputs[keys[0]]
            elif job.rule.output_shape == "list":
                kwargs["output"] = [ctx.outputs[k] for k in keys]
            else:
                kwargs["output"] = dict(ctx.outputs)
        if "params" in names or takes_all:
            kwargs["params"] = job.rule.params
        if "wildcards" in names or takes_all:
            kwargs["wildcards"] = job.wildcards
        if "gpus" in names:  # the CUDA ids the job may use: those it was assigned, else those visible
            kwargs["gpus"] = list(ctx.gpus) if ctx.gpus is not None else (
                visible_gpus() if job.rule.resources.get("gpus") else [])
        if not takes_all:
            unknown = [k for k in kwargs if k not in names]
            if unknown:
                raise DreamError(f"rule {job.rule.name!r}: {action.__name__}() does not accept {', '.join(unknown)}",
                                 job.rule.where, hint="add these parameters to the function")
            missing = [n for n in names if n not in kwargs and _required(action, n)]
            if missing:
                raise DreamError(f"rule {job.rule.name!r}: {action.__name__}() wants {', '.join(missing)}, which"
                                 " the rule does not provide", job.rule.where)
        result = action(**kwargs)
        return self._by_key(job, result, wrote_files=wants_output)

    def _by_key(self, job: Job, result: Any, wrote_files: bool) -> dict[str, Any]:
        keys = output_keys(job)
        if wrote_files:
            return {}
        if len(keys) == 1:
            return {keys[0]: result}
        if isinstance(result, dict) and set(result) == set(keys):
            return result
        if isinstance(result, (list, tuple)) and len(result) == len(keys) and job.rule.output_shape == "list":
            return dict(zip(keys, result))
        raise DreamError(f"rule {job.rule.name!r} has {len(keys)} outputs; return a dict keyed {keys}",
                         job.rule.where)

    def _write(self, job: Job, fingerprint: str, temps: dict[str, str], produced: dict[str, Any],
               ctx: JobContext) -> dict[str, tuple[int | None, str | None]]:
        """Write returned tables to their temp paths; check that the action wrote the others."""
        outputs: dict[str, tuple[int | None, str | None]] = {}
        for key, (_, path) in zip(output_keys(job), job.outputs):
            tmp = temps[key]
            if key in produced:
                if not is_table_path(path):
                    raise DreamError(f"rule {job.rule.name!r}: {path} is not a Parquet file, so the function"
                                     " must write it: add an `output` parameter", job.rule.where)
                table = to_table(produced[key], f"rule {job.rule.name!r}")
                outputs[key] = (table.num_rows, write_table(table, tmp, job.rule.name, fingerprint))
            elif key in ctx.written:
                outputs[key] = ctx.written[key]
            elif not os.path.lexists(tmp):
                raise DreamError(f"rule {job.rule.name!r} did not write {path}", job.rule.where)
            elif is_table_path(path) and os.path.isfile(tmp):
                outputs[key] = (_parquet_rows(tmp), None)
            else:
                outputs[key] = (None, None)
        return outputs


class JobRunner(ActionRunner):
    """Both halves in the coordinating process: execute, then place the outputs and make their records."""

    def __init__(self, planner: Planner, root: str, log: Any = print, progress: Any = None, budget: Any = None,
                 dreamfile: str = "", config: dict[str, Any] | None = None):
        super().__init__(root, log, progress, budget, dreamfile, config, state=planner.state,
                         input_hash=planner.content_hash)
        self.planner = planner

    def run(self, decision: Decision, run_id: int | None, gpus: tuple[str, ...] | None = None,
            workers: WorkerStarter | None = None) -> list[TargetRecord]:
        """Run the job of `decision` (on `gpus`, its generation workers started by `workers`); returns the records
        of its outputs."""
        temps = self.prepare(decision.job)
        try:
            output = self.execute(decision.job, decision.fingerprint, temps, gpus, workers)
            return self.place(decision, temps, output, run_id)
        finally:
            self.release(temps)

    def place(self, decision: Decision, temps: dict[str, str], output: JobOutput,
              run_id: int | None) -> list[TargetRecord]:
        """Put executed outputs in place (early cutoff keeps unchanged files); returns their records."""
        job = decision.job
        records = []
        built_at = datetime.now(timezone.utc).replace(tzinfo=None)
        with job_failures(job):
            for key, (_, path) in zip(output_keys(job), job.outputs):
                rows, data_hash = output.outputs[key]
                content_hash, size = self._place(path, temps[key], data_hash, job.rule.name, decision.fingerprint)
                records.append(TargetRecord(path, job.rule.name, decision.fingerprint,
                                            dict(decision.components or {}), content_hash, data_hash, size, rows,
                                            built_at, output.duration_s, run_id, dict(output.stats)))
        if output.work_dir:
            shutil.rmtree(output.work_dir, ignore_errors=True)
        return records

    def _place(self, path: str, tmp: str, new_data_hash: str | None, rule: str,
               fingerprint: str) -> tuple[str | None, int]:
        """Rename tmp over path, unless path already holds the same content (then keep it untouched)."""
        planner = self.planner
        target = target_for(path, folder=os.path.isdir(tmp))
        new_hash = planner.built_hash(tmp, target.is_folder)
        current = planner.unchanged(path, new_hash, new_data_hash) if target.exists() else None
        if current is not None:
            remove_path(tmp)
            if target.is_folder:
                write_marker(path, rule, fingerprint, current)
            return current, target.size()
        if target.is_folder:
            write_marker(tmp, rule, fingerprint, new_hash)
        target.place(tmp)
        planner.placed(tmp, path, new_hash, target.is_folder)
        return new_hash, target.size()


def _temps_by_target(folder: str) -> dict[str, list[str]]:
    """The temp outputs in `folder` (see `temp_path`), by the name of the target they were for."""
    found: dict[str, list[str]] = {}
    with os.scandir(folder or ".") as entries:
        for entry in entries:
            name = entry.name
            mark = name.find(TEMP_MARK)
            if mark > 1 and name.startswith("."):
                found.setdefault(name[1:mark], []).append(entry.path)
    return found


def _required(fn: Any, name: str) -> bool:
    import inspect

    return inspect.signature(fn).parameters[name].default is inspect.Parameter.empty


def _parquet_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


