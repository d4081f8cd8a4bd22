"""A pool of OpenAI-compatible servers that serve one model: `llm("openai/NAME", api_base=[url1, url2, ...])`.

Each request takes a slot of one server: the live server with the most free slots. Where the Dreamfile fixes
no `concurrency=`, each server has its own adaptive limit (`dreammake.llm.adaptive`: it grows while answers
keep pace and halves on 429s, 503s and timeouts); a fixed `concurrency=N` bounds the whole pool at N. A
request waits (first come, first served) while no server has a free slot. A server that fails a request
(connection refused or reset, no answer in time, a 5xx) is taken out of the pool for a while and tried again
after that; the failed request is retried on another server by the usual bounded retries. The servers of a
pool are taken to serve the same model, so a pool's identity names no server: adding or removing one keeps
every cached row. A backend with a single endpoint is a pool of one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .adaptive import AdaptiveLimit
from .util import public_url

POOL_IDENTITY = "pool"  # the api_base entry of a pool's identity
RETRY_DEAD_AFTER_S = 10.0


@dataclass
class Server:
    """One server of a pool: its URL, its concurrency limit, and when it may be tried again."""

    url: str
    limit: AdaptiveLimit
    dead_until: float = 0.0
    failures: int = 0


class Slot(NamedTuple):
    """A request's place at a server, held from sending until its answer is taken (or it failed)."""

    server: Server
    epoch: int  # the server limit's epoch when taken (see AdaptiveLimit.on_overload)


class ServerPool:
    """Slots of servers, with failed servers set aside (see the module docstring).

    `concurrency`: a fixed limit for the whole pool, or None for an adaptive limit per server; `say` gets the
    lines of a limit that changed a lot. Used from one asyncio loop, so it needs no lock."""

    def __init__(self, urls: list[str], concurrency: int | None = None, say: Callable[[str], None] | None = None,
                 retry_dead_after_s: float = RETRY_DEAD_AFTER_S):
        if not urls:
            raise ValueError("a server pool needs at least one api_base")
        if concurrency is None:
            self.total = None
            self.servers = [Server(url, AdaptiveLimit(name=public_url(url) or url, say=say)) for url in urls]
        else:
            self.total = AdaptiveLimit.fixed(concurrency)
            self.servers = [Server(url, AdaptiveLimit.fixed(concurrency)) for url in urls]
        self.retry_dead_after_s = retry_dead_after_s
        self._waiters: deque[asyncio.Future[Slot]] = deque()

    @property
    def capacity(self) -> int:
        """The most slots the pool can ever have taken at once."""
        return self.total.limit if self.total is not None else sum(s.limit.ceiling for s in self.servers)

    async def acquire(self) -> Slot:
        """A slot of the best server with one free, waiting in turn when none has (`release` gives it back)."""
        if not self._waiters:
            server = self._choose()
            if server is not None:
                return self._take(server)
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot just as it was cancelled
                self.release(waiter.result())
            raise

    def answered(self, slot: Slot, latency: float) -> None:
        """The request on `slot` was answered after `latency` seconds (its slot is still held)."""
        server = slot.server
        server.failures, server.dead_until = 0, 0.0
        server.limit.on_success(latency)
        self._wake()  # the limit may have grown

    def release(self, slot: Slot, failed: bool = False, overload: str | None = None) -> None:
        """Give `slot` back. `failed`: the server failed the request (it is set aside for a while);
        `overload`: it pushed back (`429`, `503`, `504`, `timeout`: its limit shrinks)."""
        server = slot.server
        server.limit.release()
        if self.total is not None:
            self.total.release()
        if failed:
            server.failures += 1
            server.dead_until = time.monotonic() + self.retry_dead_after_s
        if overload is not None:
            server.limit.on_overload(slot.epoch, overload)
        self._wake()

    def _choose(self) -> Server | None:
        """The live server with the most free slots; a set-aside one only when no server is live."""
        if self.total is not None and not self.total.has_room:
            return None
        now = time.monotonic()
        live = [s for s in self.servers if s.dead_until <= now]
        if live:
            roomy = [s for s in live if s.limit.has_room]
            return max(roomy, key=lambda s: s.limit.limit - s.limit.in_use) if roomy else None
        roomy = [s for s in self.servers if s.limit.has_room]
        return min(roomy, key=lambda s: s.dead_until) if roomy else None

    def _take(self, server: Server) -> Slot:
        if self.total is not None:
            self.total.take()
        return Slot(server, server.limit.take())

    def _wake(self) -> None:
        """Hand free slots to the waiters, first come first served."""
        while self._waiters:
            if self._waiters[0].done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            server = self._choose()
            if server is None:
                return
            self._waiters.popleft().set_result(self._take(server))

    def describe(self, path: str = "") -> str:
        """The servers' URLs (with `path` under each), without credentials: for messages."""
        return ", ".join(public_url(f"{s.url}/{path}" if path else s.url) or s.url for s in self.servers)


def base_identity(api_base: str | list[str] | None) -> str | None:
    """The `api_base` entry of a model identity: one server's public URL, or `pool` for a pool."""
    if isinstance(api_base, (list, tuple)):
        return POOL_IDENTITY if len(api_base) > 1 else public_url(api_base[0])
    return public_url(api_base)
