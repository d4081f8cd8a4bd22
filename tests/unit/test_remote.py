"""The generation-worker protocol (`dreammake.llm.remote`) with workers on threads and an instant backend."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dreammake.errors import DreamError
from dreammake.jsonfiles import write_json
from dreammake.llm import remote, spool
from dreammake.llm.base import Response
from dreammake.llm.remote import RemoteGeneration, Session, serve

pytestmark = pytest.mark.usefixtures("project_dir")


class Reverse:
    """Answers each request with its last message reversed; remembers what it was asked."""

    def __init__(self, fail_after: int | None = None):
        self.asked: list[str] = []
        self.fail_after = fail_after

    def generate(self, requests: list[Any], on_result: Any, cancel: threading.Event) -> None:
        for i, request in enumerate(requests):
            if self.fail_after is not None and len(self.asked) >= self.fail_after:
                raise RuntimeError("out of memory")
            text = request.messages[-1]["content"]
            self.asked.append(text)
            on_result(i, Response(text=text[::-1], finish_reason="stop", completion_tokens=1))


class ThreadWorkers:
    """Workers as threads running `serve` (what the executors do with processes)."""

    always = False

    def __init__(self, backends: list[Reverse]):
        self.backends = backends
        self.threads: list[threading.Thread] = []
        self.failed: dict[int, str] = {}

    def start(self, folder: str, shards: int) -> ThreadWorkers:
        for shard in range(shards):
            thread = threading.Thread(target=self._serve, args=(folder, shard), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _serve(self, folder: str, shard: int) -> None:
        try:
            serve(folder, shard, lambda model: self.backends[shard], log=lambda text: None)
        except Exception as exc:
            write_json(remote.error_path(folder, shard), {"error": f"{type(exc).__name__}: {exc}"})
            self.failed[shard] = "exit 1"

    def ended(self) -> dict[int, str]:
        return {i: self.failed.get(i, "exit 0") for i, t in enumerate(self.threads) if not t.is_alive()}

    def log(self, shard: int) -> str:
        return f"shard-{shard}.log"

    def stop(self, wait_s: float) -> None:
        for thread in self.threads:
            thread.join(wait_s)


class Cache:
    """`RowCache.absorb` without DuckDB: reads each spool past the last offset."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    def absorb(self, path: str) -> list[dict[str, Any]]:
        try:
            records, self.offsets[path] = spool.read(path, self.offsets.get(path, 0))
        except FileNotFoundError:
            return []
        return records


def session(root: Path, shards: int) -> tuple[str, Session]:
    spools = [str(root / f"spool/job.shard{i}.jsonl") for i in range(shards)]
    return str(root / "remote/job"), Session(str(root), "Dreamfile", "job", {}, shards, spools)


def rows(words: list[str]) -> list[tuple[str, list[dict[str, str]], int, int]]:
    return [(f"k-{w}", [{"role": "user", "content": w}], 0, 0) for w in words]


def test_batches_are_split_over_the_shards_and_answered_once(project_dir: Path) -> None:
    folder, sess = session(project_dir, 2)
    backends = [Reverse(), Reverse()]
    generation = RemoteGeneration(folder, sess, ThreadWorkers(backends))
    got: dict[str, str] = {}
    words = [f"w{i}" for i in range(7)]
    generation.run("m", {}, rows(words), Cache().absorb, lambda r: got.update({r["key"]: r["text"]}),
                   threading.Event())
    generation.run("m", {}, rows(["x", "y"]), Cache().absorb, lambda r: got.update({r["key"]: r["text"]}),
                   threading.Event())  # a second chunk: the same workers, the model loaded once
    generation.close()
    assert got == {f"k-{w}": w[::-1] for w in [*words, "x", "y"]}
    assert backends[0].asked == ["w0", "w2", "w4", "w6", "x"] and backends[1].asked == ["w1", "w3", "w5", "y"]
    assert not list(Path(folder).glob("batch-*")) and all(not t.is_alive() for t in generation.workers.threads)


def test_a_failed_shard_is_named_after_the_others_finish(project_dir: Path) -> None:
    folder, sess = session(project_dir, 2)
    generation = RemoteGeneration(folder, sess, ThreadWorkers([Reverse(), Reverse(fail_after=1)]), "Dreamfile:9")
    got: list[str] = []
    with pytest.raises(DreamError) as error:
        generation.run("m", {}, rows([f"w{i}" for i in range(6)]), Cache().absorb,
                       lambda r: got.append(r["key"]), threading.Event())
    generation.close()
    assert sorted(got) == ["k-w0", "k-w1", "k-w2", "k-w4"]  # shard 0's rows and the one shard 1 answered
    text = error.value.one_line()
    assert text.startswith("Dreamfile:9: rule 'job': generation worker shard 1 (RuntimeError: out of memory;")
    assert "2 row(s) unanswered" in text and "only the missing rows are sent" in text


def test_a_restarted_shard_skips_what_its_spool_holds(project_dir: Path) -> None:
    folder, sess = session(project_dir, 1)
    writer = spool.SpoolWriter(sess.spools[0])
    writer.append({"key": "k-a", "model": "m", "text": "a"})  # answered before a preemption
    writer.close()
    backend = Reverse()
    generation = RemoteGeneration(folder, sess, ThreadWorkers([backend]))
    got: list[str] = []
    generation.run("m", {}, rows(["a", "b"]), Cache().absorb, lambda r: got.append(r["key"]), threading.Event())
    generation.close()
    assert backend.asked == ["b"] and sorted(got) == ["k-a", "k-b"]


def test_a_worker_without_its_coordinator_exits(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, sess = session(project_dir, 1)
    RemoteGeneration(folder, sess, ThreadWorkers([]))  # writes session.json
    (Path(folder) / remote.HEARTBEAT_FILE).write_text("")
    monkeypatch.setattr(remote, "ORPHAN_S", -1.0)
    lines: list[str] = []
    assert serve(folder, 0, lambda model: Reverse(), log=lines.append) == 0
    assert "stopped touching heartbeat" in lines[-1]
