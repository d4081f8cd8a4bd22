"""Generation workers as subprocesses of this process: the local executor's `WorkerStarter`.

A prompt rule's job whose generation goes to workers (`dreammake.llm.remote`: the rule asks for `shards`, or
the job was given GPUs) starts one `python -m dreammake.gen_worker FOLDER SHARD` per shard. Each sees only its
own GPUs (`CUDA_VISIBLE_DEVICES`: the job's GPUs split in equal parts, one replica per GPU by default); on a
machine without assigned GPUs the shards share the cores (`OMP_NUM_THREADS`). Output goes to
`FOLDER/shard-<i>.log`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from dreammake.config_env import threads_each
from dreammake.config_env import worker_env as base_worker_env


def worker_env(config: dict[str, Any], gpus: tuple[str, ...] | None, shards: int) -> dict[str, str]:
    """The environment of a generation worker: ours, the `--config` values, this interpreter's import path (the
    Dreamfile's own modules resolve as here), and its GPUs or its share of the cores."""
    env = base_worker_env(config)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    elif shards > 1:
        env.setdefault("OMP_NUM_THREADS", threads_each(shards))
    return env


def split_gpus(gpus: tuple[str, ...] | None, shards: int) -> list[tuple[str, ...] | None]:
    """Each shard's GPUs: the job's GPUs in `shards` equal consecutive parts (None for all: none assigned)."""
    if not gpus:
        return [None] * shards
    per = max(1, len(gpus) // shards)
    return [gpus[i * per:(i + 1) * per] for i in range(shards)]


_RUNNING: set[subprocess.Popen[bytes]] = set()  # workers not yet stopped: ended with this process at the latest


@atexit.register
def stop_all() -> None:
    """Stop every worker still running (Ctrl-C: the run ends without waiting for its job threads)."""
    for proc in list(_RUNNING):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)


class LocalWorkers:
    """A job's shard workers, one subprocess each (see the module docstring)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], logs: list[str]):
        self.procs = procs
        self.logs = logs
        _RUNNING.update(procs)

    def ended(self) -> dict[int, str]:
        """Shards whose process exited, and how."""
        return {i: _how(p.returncode) for i, p in enumerate(self.procs) if p.poll() is not None}

    def log(self, shard: int) -> str:
        return self.logs[shard]

    def stop(self, wait_s: float) -> None:
        """Wait up to `wait_s` for every worker to exit, then stop the rest (their whole process group)."""
        deadline = time.monotonic() + wait_s
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _RUNNING.discard(proc)


class LocalStarter:
    """Starts one job's shard workers here (`WorkerStarter`)."""

    always = False  # the local executor generates in-process unless a rule asks for shards or has GPUs

    def __init__(self, root: str, config: dict[str, Any], gpus: tuple[str, ...] | None,
                 python: str = sys.executable):
        self.root = root
        self.config = config
        self.gpus = gpus
        self.python = python

    def start(self, folder: str, shards: int) -> LocalWorkers:
        procs, logs = [], []
        for shard, gpus in enumerate(split_gpus(self.gpus, shards)):
            log = os.path.join(folder, f"shard-{shard}.log")
            with open(log, "ab") as out:
                procs.append(subprocess.Popen([self.python, "-m", "dreammake.gen_worker", folder, str(shard)],
                                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              cwd=self.root, env=worker_env(self.config, gpus, shards),
                                              start_new_session=True))
            logs.append(log)
        return LocalWorkers(procs, logs)


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"
