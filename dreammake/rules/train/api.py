"""``run_training``: the one entry point.

Training always runs in child processes (``python -m <package>.worker``), so the caller's threads are safe
and a killed worker leaves resumable checkpoints.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from dreammake.config_env import threads_each
from dreammake.config_env import worker_env as base_worker_env
from dreammake.gpus import detect_gpus, visible_gpus

from .launch import worker_command
from .spec import (
    COMPLETE_MARKER,
    KIND_OPTIONS,
    LOG_JSONL,
    RESULT_JSON,
    Spec,
    per_device_batch,
    process_count,
    quantization_recipe,
    resolved_dtype,
)

KINDS = tuple(KIND_OPTIONS)
LOG_FILE = "train.log"


class TrainingError(RuntimeError):
    """A worker exited with an error; the message carries the tail of the log."""


def _reward_fn_ref(fn: Any, dreamfile: dict[str, Any] | None = None) -> dict[str, Any]:
    """A reference the worker can import: callables become module/qualname (+ source file as fallback);
    a function defined in a Dreamfile is found again by re-loading that Dreamfile (with its config, which the
    worker gets through its environment: `dreammake.config_env`)."""
    if callable(fn) and getattr(fn, "__module__", "") == "__dreamfile__":
        if dreamfile is None:
            raise ValueError("a reward function from a Dreamfile needs the Dreamfile's path and config")
        return {"dreamfile": dreamfile["path"], "qualname": fn.__qualname__, "module": ""}  # config: environment
    if callable(fn):
        ref = {"module": fn.__module__, "qualname": fn.__qualname__}
        try:
            ref["file"] = os.path.abspath(inspect.getsourcefile(fn) or "")
        except TypeError:
            pass
        if "<locals>" in ref["qualname"] or ref["qualname"] == "<lambda>":
            raise ValueError(
                "options['reward_fn'] must be a module-level function (it is imported by the worker)"
            )
        return ref
    if isinstance(fn, str) and ":" in fn:
        target, name = fn.rsplit(":", 1)
        if target.endswith(".py"):
            return {"file": os.path.abspath(target), "qualname": name, "module": ""}
        return {"module": target, "qualname": name}
    raise ValueError("options['reward_fn'] must be a callable or 'module:function' / 'file.py:function'")


def worker_env(nproc: int, gpus: int, config: dict[str, Any] | None = None,
               devices: tuple[str, ...] | None = None) -> dict[str, str]:
    """The training workers' environment: offline, seeded, threads per process, the `--config` values, and the GPUs
    they may use: `devices` (the CUDA ids the executor assigned the job) when given, none without `gpus`, else
    what this process sees."""
    env = base_worker_env(config)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONHASHSEED"] = "0"  # set order (e.g. PEFT's target module list) must not vary between builds
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    if gpus <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
        env.setdefault("OMP_NUM_THREADS", threads_each(nproc))
    return env


def run_training(
    kind: str,
    options: dict,
    inputs: dict[str, str],
    output_dir: str,
    work_dir: str,
    processes: int = 1,
    gpus: int = 0,
    cancel: threading.Event | None = None,
    dreamfile: dict[str, Any] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    nodes: int = 1,
    devices: tuple[str, ...] | None = None,
) -> dict:
    """Train ``kind`` on Parquet ``inputs`` and write the final checkpoint into ``output_dir``.

    ``work_dir`` keeps intermediate checkpoints, the spec, ``train.log`` and ``train_log.jsonl``; calling
    again with the same ``work_dir`` resumes from its last complete checkpoint. ``on_record`` receives each record
    the worker appends to ``train_log.jsonl`` while it runs (for progress). ``processes`` and ``gpus`` are per
    node; ``nodes`` > 1 needs a Slurm allocation of that many nodes. ``devices`` are the CUDA ids assigned to the
    job (None: what this process sees). Returns the metrics summary.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown training kind {kind!r}; expected one of {KINDS}")
    options = dict(options or {})
    if not options.get("base"):
        raise ValueError("options['base'] (a local model folder) is required")
    if "train" not in inputs:
        raise ValueError("inputs must contain 'train'")
    nproc = process_count(int(processes), gpus)  # per node
    per_device_batch(options.get("batch_size"), options.get("gradient_accumulation"), nproc * nodes)  # fail early
    if quantization_recipe(options.get("quantization")) is not None:
        check_quantization_backend(options["quantization"], devices)
    options["dtype"] = resolved_dtype(options.get("dtype"), gpus)
    extra: dict[str, Any] = {}
    if kind == "grpo":
        if options.get("reward_fn") is not None:
            extra["reward_fn"] = _reward_fn_ref(options["reward_fn"], dreamfile)
        elif not options.get("reward_model"):
            raise ValueError("grpo needs options['reward_fn'] (callable) or options['reward_model'] (folder)")
    options.pop("reward_fn", None)
    output_dir = os.path.abspath(output_dir)
    work_dir = os.path.abspath(work_dir)
    os.makedirs(output_dir, exist_ok=True)
    os.makedirs(work_dir, exist_ok=True)
    spec = Spec(
        kind=kind,
        options=options,
        inputs={k: os.path.abspath(v) for k, v in inputs.items() if v},
        output_dir=output_dir,
        work_dir=work_dir,
        processes=nproc * nodes,
        gpus=gpus,
        extra=extra,
        nodes=nodes,
    )
    spec_path = os.path.join(work_dir, "spec.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        fh.write(spec.to_json())
    result_path = os.path.join(work_dir, RESULT_JSON)
    if os.path.exists(result_path):
        os.remove(result_path)
    log_path = os.path.join(work_dir, LOG_FILE)
    command = worker_command(spec_path, nproc, nodes)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=worker_env(nproc, gpus, (dreamfile or {}).get("config"), devices),
            cwd=work_dir,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        with open(os.path.join(work_dir, "launcher.pid"), "w", encoding="utf-8") as fh:
            fh.write(str(proc.pid))
        rc = _wait(proc, cancel, LogTail(os.path.join(work_dir, LOG_JSONL), on_record))
    if rc != 0 or not os.path.exists(result_path):
        raise TrainingError(f"{kind} training failed (exit {rc}); log {log_path}:\n{_tail(log_path)}")
    if not os.path.exists(os.path.join(output_dir, COMPLETE_MARKER)):
        raise TrainingError(f"{kind} training finished without the completion marker in {output_dir}")
    with open(result_path, encoding="utf-8") as fh:
        return json.load(fh)


def check_quantization_backend(quantization: str, devices: tuple[str, ...] | None) -> None:
    """ValueError, before any process starts, when this machine cannot load a quantized base: bitsandbytes'
    4-bit layers need a CUDA GPU (one visible here: the job's `devices` are among them, unless `--resources gpus=N`
    asked for more than the machine has) and the package itself."""
    missing = []
    if not detect_gpus() or (devices is not None and not set(devices) <= set(visible_gpus())):
        missing.append("no CUDA GPU is visible here")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes is not installed (pip install bitsandbytes)")
    if missing:
        raise ValueError(f"quantization={quantization!r} needs a CUDA GPU and bitsandbytes: {'; '.join(missing)}")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the launching process dies (so a killed dreammake leaves no trainer)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LogTail:
    """Follows a worker's ``train_log.jsonl`` from its present end (records of an earlier, killed run are old news)
    and hands each complete new line, parsed, to ``on_record``."""

    def __init__(self, path: str, on_record: Callable[[dict[str, Any]], None] | None):
        self.path = path
        self.on_record = on_record
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0

    def poll(self) -> None:
        """Deliver the records appended since the last poll."""
        if self.on_record is None:
            return
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                self.on_record(json.loads(line))
            except ValueError:
                continue


def _wait(proc: subprocess.Popen, cancel: threading.Event | None, tail: LogTail) -> int:
    """Wait for the worker, following its log; when `cancel` is set, stop its whole process group (torchrun and
    its ranks)."""
    while True:
        try:
            rc = proc.wait(timeout=0.5)
            tail.poll()
            return rc
        except subprocess.TimeoutExpired:
            tail.poll()
            if cancel is not None and cancel.is_set():
                import signal

                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    return proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    return proc.wait()


def _tail(path: str, limit: int = 6000) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read().decode("utf-8", "replace")
