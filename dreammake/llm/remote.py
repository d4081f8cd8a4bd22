"""Generation in worker processes: a prompt rule's misses handed to N shard workers, results back through spools.

The coordinator (the process that holds the row cache) computes every row's key and looks the keys up as
always; only the misses travel. For each `generate` call of a job it writes one request batch into the
job's request folder, `.dreammake/remote/<rule>-<hash12>/`:

    session.json        the Dreamfile, rule and wildcards a worker rebuilds the job from, the shard count and the
                        GPUs per shard
    batch-000001.json   {"model": <cache identity hash>, "params": {...}, "rows": [[key, messages, seed, sample]]}
    end                 written when the job needs no more batches: workers exit
    heartbeat           touched by the coordinator; a worker whose coordinator is gone (no touch for
                        ORPHAN_S) exits instead of holding a GPU
    shard-<i>.error.json  why shard i stopped, when it failed
    shard-<i>.log       its output (the local executor's; Slurm writes the same name)

Shard i takes the rows at positions i, i+N, i+2N… of each batch, loads the model once (the first batch
names it), and appends every answer to its own row spool, `.dreammake/spool/<rule>-<hash12>.shard<i>.jsonl`,
the moment it arrives. The coordinator follows those spools into the row cache while they grow (its
progress bar moves), so a worker that is killed or preempted costs only its in-flight rows: the next run
finds the rest in the cache and sends only what is still missing. Workers never open DuckDB. A shard that
is started again (a Slurm requeue) skips the keys already in its spool. The order and content of the
output do not depend on N: rows are put back in their positions by key, and seeds are per row.

This module holds both halves of the protocol and nothing that starts processes: how workers start
(subprocesses, a Slurm array) is the executor's `WorkerStarter`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dreammake.errors import DreamError
from dreammake.jsonfiles import read_json, write_json
from dreammake.llm import spool
from dreammake.llm.base import Request, Response

REMOTE_DIR = "remote"
POLL_S = 0.25  # the longest wait between two looks at the shard spools (coordinator) or for the next batch (worker)
FIRST_POLL_S = 0.005  # the first wait after something happened; it doubles while nothing does, up to POLL_S
HEARTBEAT_S = 2.0
ORPHAN_S = 120.0  # a worker stops when its coordinator has not touched the heartbeat for this long
STOP_WAIT_S = 30.0  # how long `close` lets workers finish (they exit within POLL_S of the end marker)
SESSION_FILE = "session.json"
END_FILE = "end"
HEARTBEAT_FILE = "heartbeat"


class Workers(Protocol):
    """A job's running shard workers, as the executor started them."""

    def ended(self) -> dict[int, str]:
        """The shards that are no longer running, and how each ended ("exit 1", "CANCELLED", …)."""
        ...

    def log(self, shard: int) -> str:
        """The path of a shard's log."""
        ...

    def stop(self, wait_s: float) -> None:
        """Let the workers exit (the end marker is written) for up to `wait_s`, then stop them."""
        ...


class WorkerStarter(Protocol):
    """What an executor gives a job so that its generation can run in workers."""

    always: bool  # True: local models always generate in workers (Slurm: the GPUs are on the nodes)

    def start(self, folder: str, shards: int) -> Workers:
        """Start `shards` workers (`python -m dreammake.gen_worker FOLDER SHARD`) on the request folder."""
        ...


def batch_path(folder: str, number: int) -> str:
    """The request batch `number` (from 1) of a request folder."""
    return os.path.join(folder, f"batch-{number:06d}.json")


def error_path(folder: str, shard: int) -> str:
    """Where shard `shard` says why it failed."""
    return os.path.join(folder, f"shard-{shard}.error.json")


@dataclass
class Session:
    """What a worker needs to rebuild a job (session.json)."""

    root: str
    dreamfile: str
    rule: str
    wildcards: dict[str, str]
    shards: int
    spools: list[str]  # the spool of each shard, by shard index
    gpus: int = 0  # the GPUs each shard owns (the rule's `gpus`): its model is placed over them

    @classmethod
    def load(cls, folder: str) -> Session:
        data = read_json(os.path.join(folder, SESSION_FILE))
        if not isinstance(data, dict):
            raise DreamError(f"{folder} has no readable {SESSION_FILE}")
        return cls(**data)


class RemoteGeneration:
    """The coordinator's half for one job: request batches out, spooled answers in (see the module docstring).

    Made once per job (the first batch starts the workers) and closed when the job ends."""

    def __init__(self, folder: str, session: Session, starter: WorkerStarter, where: str | None = None):
        self.folder = folder
        self.session = session
        self.starter = starter
        self.where = where  # the rule's Dreamfile line, for errors
        self.workers: Workers | None = None
        self._batches = 0
        self._beat = 0.0
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # a killed earlier run's batches, markers and errors (logs are kept)
            if not name.endswith(".log"):
                os.remove(os.path.join(folder, name))
        write_json(os.path.join(folder, SESSION_FILE), vars(session))

    def run(self, model_hash: str, params: dict[str, Any], rows: Sequence[tuple[str, list[dict[str, str]],
            int | None, int]], absorb: Callable[[str], list[dict[str, Any]]],
            on_record: Callable[[dict[str, Any]], None], cancel: threading.Event) -> None:
        """Send one batch of misses (key, messages, seed, sample) and wait until each has an answer.

        `absorb(spool)` ingests a shard spool's new records into the row cache and returns them; `on_record` is
        called once for each answer of this batch. Returns early when `cancel` is set (the workers are stopped).
        A DreamError when shards ended with rows of theirs unanswered (after taking in what they did answer)."""
        self._batches += 1
        write_json(batch_path(self.folder, self._batches), {"model": model_hash, "params": params,
                                                             "rows": [list(r) for r in rows]})
        self._heartbeat()
        if self.workers is None:
            self.workers = self.starter.start(self.folder, self.session.shards)
        shards = self.session.shards
        owner = {row[0]: i % shards for i, row in enumerate(rows)}
        wait = Backoff()
        while owner:
            if self._take(absorb, owner, on_record):
                wait.reset()
            if not owner:
                return
            if cancel.is_set():
                self.workers.stop(0.0)
                return
            ended = self.workers.ended()
            if ended and set(owner.values()) <= set(ended):
                self._take(absorb, owner, on_record)  # what they spooled before ending
                if owner:
                    raise self._ended_error(ended, owner)
            wait.sleep()
            self._heartbeat()

    def _take(self, absorb: Callable[[str], list[dict[str, Any]]], owner: dict[str, int],
              on_record: Callable[[dict[str, Any]], None]) -> int:
        """Hand this batch's new answers to `on_record`; returns how many came."""
        taken = 0
        for path in self.session.spools:
            for record in absorb(path):
                if owner.pop(record["key"], None) is not None:
                    on_record(record)
                    taken += 1
        return taken

    def _ended_error(self, ended: dict[int, str], owner: dict[str, int]) -> DreamError:
        left = len(owner)
        shards = sorted(set(owner.values()))
        reasons = []
        for shard in shards:
            failure = read_json(error_path(self.folder, shard))
            how = failure["error"] if isinstance(failure, dict) and failure.get("error") else ended[shard]
            reasons.append(f"shard {shard} ({how}; log: {os.path.relpath(self.workers.log(shard))})")
        return DreamError(f"rule {self.session.rule!r}: generation worker {', '.join(reasons)} ended with {left}"
                          " row(s) unanswered; the answered rows are kept", self.where,
                          hint="run dreammake again: only the missing rows are sent")

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._beat >= HEARTBEAT_S:
            with open(os.path.join(self.folder, HEARTBEAT_FILE), "w") as f:
                f.write(str(time.time()))
            self._beat = now

    def close(self) -> None:
        """No more batches: the workers exit (stopped after STOP_WAIT_S); the batch files go, the logs stay."""
        with open(os.path.join(self.folder, END_FILE), "w"):
            pass
        if self.workers is not None:
            self.workers.stop(STOP_WAIT_S)
        for number in range(1, self._batches + 1):
            try:
                os.remove(batch_path(self.folder, number))
            except OSError:
                pass


class Backoff:
    """Waits that start short after something happened and double while nothing does, up to POLL_S: a batch's
    last answers and the next batch are picked up within milliseconds, an idle wait costs four looks a second."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wait = FIRST_POLL_S

    def sleep(self) -> None:
        time.sleep(self.wait)
        self.wait = min(POLL_S, self.wait * 2)


# -- the worker's half -------------------------------------------------------------------------------
def serve(folder: str, shard: int, backend_for: Callable[[str], Any], log: Callable[[str], None] = print) -> int:
    """Answer shard `shard`'s rows of every batch in `folder` until the end marker; returns the rows answered.

    `backend_for(model_hash)` gives the loaded backend of a model named by a batch."""
    session = Session.load(folder)
    writer = spool.SpoolWriter(session.spools[shard])
    done = _spooled_keys(session.spools[shard])
    answered = 0
    number = 1
    wait = Backoff()
    try:
        while True:
            batch = read_json(batch_path(folder, number))
            if batch is not None:
                answered += _answer(batch, shard, session.shards, backend_for(batch["model"]), writer, done)
                log(f"shard {shard}: batch {number} done ({answered} row(s) answered so far)")
                number += 1
                wait.reset()
                continue
            if os.path.exists(os.path.join(folder, END_FILE)) and not os.path.exists(batch_path(folder, number)):
                return answered
            if _orphaned(folder):
                log(f"shard {shard}: the coordinator stopped touching {HEARTBEAT_FILE}; exiting")
                return answered
            wait.sleep()
    finally:
        writer.close()


def _answer(batch: dict[str, Any], shard: int, shards: int, backend: Any, writer: spool.SpoolWriter,
            done: set[str]) -> int:
    mine = [row for i, row in enumerate(batch["rows"]) if i % shards == shard and row[0] not in done]
    if not mine:
        return 0
    model, params = batch["model"], batch["params"]
    requests = [Request(tuple(messages), params, seed, sample) for _, messages, seed, sample in mine]

    def on_result(index: int, response: Response) -> None:
        key = mine[index][0]
        writer.append({"key": key, "model": model, "text": response.text, "finish_reason": response.finish_reason,
                       "prompt_tokens": response.prompt_tokens, "completion_tokens": response.completion_tokens,
                       "cost_usd": response.cost_usd, "latency_s": response.latency_s,
                       "served_model": response.served_model, "system_fingerprint": response.system_fingerprint})
        done.add(key)

    backend.generate(requests, on_result, threading.Event())
    return len(mine)


def _spooled_keys(path: str) -> set[str]:
    """Keys a shard already answered (it was started again after a preemption)."""
    try:
        records, _ = spool.read(path)
    except FileNotFoundError:
        return set()
    return {r["key"] for r in records}


def _orphaned(folder: str) -> bool:
    try:
        return time.time() - os.path.getmtime(os.path.join(folder, HEARTBEAT_FILE)) > ORPHAN_S
    except OSError:
        return False
