"""Shared machinery for API backends: a background asyncio loop, concurrency limits per server (a pool of
one or more, `dreammake.llm.pool`: adaptive unless `concurrency=` fixes one for all), rate limits (requests
and tokens per minute, token buckets), bounded retries with exponential backoff and jitter (respecting
Retry-After), and streaming results back to the calling thread.

A concurrency slot is held until the calling thread has taken the answer (`on_result`), so at most the
current limit (`concurrency`, when fixed) of requests are ever sent but not yet handed over: what a kill
can lose. A failed attempt gives its slot back at once; its retry takes a new one, maybe at another server.
Each request waits at most `timeout` seconds for its answer (60 s unless raised, e.g. for a
slow local server); while no answer comes, a line says how many requests wait on which URL.

A subclass implements ``_call(request, server) -> Response`` (raising :class:`Retryable` for transient
failures and :class:`LLMError` for fatal ones) and optionally ``_prepare``/``_aclose``.
"""
from __future__ import annotations

import asyncio
import contextlib
import email.utils
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping

from .base import LLMError, OnResult, Request, Response
from .pool import Server, ServerPool, Slot

DEFAULT_TIMEOUT_S = 60.0  # per request: seconds to wait for an answer
WAIT_NOTICE_S = 15.0  # say so when no answer came for this long (or half the timeout, when shorter)


class Retryable(Exception):
    """A transient failure (429, 5xx, connection error, timeout): retry after a delay."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 timed_out: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.timed_out = timed_out

    @property
    def server_failed(self) -> bool:
        """No answer or a 5xx: the server is set aside for a while (a 429 or a malformed body is no failure)."""
        return self.status is None or self.status >= 500

    @property
    def overload(self) -> str | None:
        """How the server said it has too much to do (`429`, `503`, `504`, `timeout`), else None."""
        if self.status in (429, 503, 504):
            return str(self.status)
        return "timeout" if self.timed_out else None


def is_retryable_status(status: int | None) -> bool:
    """429, 408, 409 and 5xx are transient; no status (connection error) too; other 4xx not."""
    return status is None or status in (408, 409, 429) or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TokenBucket:
    """An asyncio token bucket refilled continuously at ``per_minute / 60`` per second."""

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.rate = self.capacity / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float = 1.0) -> None:
        amount = min(float(amount), self.capacity)  # a request larger than the bucket waits for a full one
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: one waiter at a time
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (or refund, when negative) tokens after the fact, e.g. real usage vs estimate."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


def estimate_tokens(messages: list[dict[str, str]], max_tokens: int | None) -> int:
    chars = sum(len(m.get("content") or "") for m in messages)
    return chars // 4 + 4 * len(messages) + int(max_tokens or 256)


class AsyncAPIBackend:
    """Base class for API backends; see the module docstring."""

    backend_name = "api"
    notify: Callable[[str], None] | None = None  # where waiting lines go (the run's log; else stderr)

    def __init__(self, model: str, *, servers: list[str] | None = None, concurrency: int | None = None,
                 rpm: float | None = None, tpm: float | None = None, max_retries: int = 5,
                 timeout: float = DEFAULT_TIMEOUT_S, backoff_base: float = 0.5, backoff_max: float = 60.0):
        """`servers`: where requests go (URLs of a pool; default: the model's one endpoint); `concurrency`:
        a fixed limit for all of them, or None for an adaptive limit per server."""
        self.model = model
        self.concurrency = None if concurrency is None else max(1, int(concurrency))
        self.pool = ServerPool(servers or [model], self.concurrency, say=self._say)
        self.max_retries = max(0, int(max_retries))
        self.timeout = float(timeout)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self._rpm = TokenBucket(rpm) if rpm else None
        self._tpm = TokenBucket(tpm) if tpm else None
        self._pause_until = 0.0  # set by a 429 with Retry-After: every worker waits
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -------------------------------------------------------------- subclass hooks
    def _prepare(self) -> None:
        """Called in the calling thread before each generate (e.g. slow imports)."""

    async def _call(self, req: Request, server: Server) -> Response:  # pragma: no cover - abstract
        """Send `req` to `server` (of `self.pool`) and return its answer."""
        raise NotImplementedError

    async def _aclose(self) -> None:
        """Close sessions (runs on the backend's loop)."""

    def endpoint(self) -> str:
        """Where requests go, for messages (no credentials)."""
        return self.model

    # -------------------------------------------------------------- event loop
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=f"dreammake-{self.backend_name}",
                                                daemon=True)
                self._thread.start()
                started.wait()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        with self._start_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        for bucket in (self._rpm, self._tpm):
            if bucket is not None:
                bucket._lock = None
        with contextlib.suppress(Exception):  # closing must not fail the run
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=30)
        loop.close()

    async def _shutdown(self) -> None:
        try:
            await self._aclose()
        finally:  # tasks left by libraries (e.g. litellm's logging worker) die with the loop
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

    # -------------------------------------------------------------- generate
    def generate(self, requests: list[Request], on_result: OnResult, cancel: threading.Event) -> None:
        if not requests:
            return
        self._prepare()
        loop = self._ensure_loop()
        results: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        flight = [0]  # requests sent and not answered yet (updated on the loop's thread)
        fut = asyncio.run_coroutine_threadsafe(self._run_all(requests, results, stop, flight), loop)
        remaining = len(requests)
        notice_after = min(WAIT_NOTICE_S, self.timeout / 2)
        last_answer = next_notice = time.monotonic()
        try:
            while remaining:
                if cancel.is_set():
                    return
                try:
                    item = results.get(timeout=0.05)
                except queue.Empty:
                    if fut.done() and results.empty():
                        fut.result()  # raises what killed the run
                        raise LLMError(f"{self.model}: generation ended with {remaining} "
                                       f"requests unanswered") from None
                    now = time.monotonic()
                    if flight[0] and now - max(last_answer, next_notice) >= notice_after:
                        next_notice = now
                        self._say(f"{self.model}: waiting on {flight[0]} request(s) to {self.endpoint()}, "
                                  f"{now - last_answer:.0f} s without an answer")
                    continue
                if isinstance(item, BaseException):
                    raise item
                try:
                    on_result(item[0], item[1])
                finally:
                    loop.call_soon_threadsafe(self.pool.release, item[2])  # the slot was held until now
                remaining -= 1
                last_answer = time.monotonic()
        finally:
            stop.set()
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(BaseException):  # already reported, or cancelled
                fut.result(timeout=30)
            while not results.empty():  # answers never handed over still hold their slots
                item = results.get()
                if isinstance(item, tuple):
                    loop.call_soon_threadsafe(self.pool.release, item[2])

    def _say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)
        else:
            print(text, file=sys.stderr, flush=True)

    async def _run_all(self, requests: list[Request], results: queue.SimpleQueue,
                       stop: threading.Event, flight: list[int]) -> None:
        it = iter(enumerate(requests))

        async def worker() -> None:
            for i, req in it:
                if stop.is_set():
                    return
                try:
                    resp, slot = await self._with_retries(req, flight)
                except LLMError as exc:
                    stop.set()
                    results.put(exc)
                    return
                except Exception as exc:  # noqa: BLE001 - a bug or unexpected error: stop the run
                    stop.set()
                    results.put(LLMError(f"{self.model}: {type(exc).__name__}: "
                                         f"{' '.join(str(exc).split())[:200]}"))
                    return
                results.put((i, resp, slot))  # its slot is released once the calling thread has taken it

        # a worker per slot the pool can ever have (each waits for one in turn)
        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.pool.capacity, len(requests)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return delay * (0.5 + random.random() * 0.5)  # jitter: 50-100% of the exponential delay

    async def _with_retries(self, req: Request, flight: list[int]) -> tuple[Response, Slot]:
        """The answer to `req` and the slot it holds, after at most `max_retries` retries."""
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                return await self._attempt(req, flight)
            except Retryable as exc:
                attempt += 1
                if attempt > self.max_retries:
                    raise LLMError(f"{self.model}: giving up after {self.max_retries} retries "
                                   f"({time.monotonic() - started:.0f} s): {exc}") from None
                if exc.retry_after is not None:
                    delay = min(exc.retry_after, 300.0) + random.random() * 0.1 * self.backoff_base
                    if exc.status == 429:
                        self._pause_until = max(self._pause_until, time.monotonic() + delay)
                else:
                    delay = self._backoff(attempt)
                await asyncio.sleep(delay)

    async def _attempt(self, req: Request, flight: list[int]) -> tuple[Response, Slot]:
        """One try of `req` on a slot of its own: the answer and the slot it holds (a failed try gives it back,
        telling the pool whether the server failed or pushed back)."""
        slot = await self.pool.acquire()
        flight[0] += 1
        est = None
        loop = asyncio.get_running_loop()
        try:
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._rpm is not None:
                await self._rpm.take(1)
            if self._tpm is not None:
                est = self._estimate(req)
                await self._tpm.take(est)
            sent = loop.time()
            resp = await self._call(req, slot.server)
        except Retryable as exc:
            self.pool.release(slot, exc.server_failed, exc.overload)
            raise
        except BaseException:  # fatal, a bug, or cancelled
            self.pool.release(slot)
            raise
        finally:
            flight[0] -= 1
        self.pool.answered(slot, loop.time() - sent)
        if self._tpm is not None and est is not None:
            used = resp.prompt_tokens + resp.completion_tokens
            if used:
                self._tpm.adjust(used - est)
        return resp, slot

    def _estimate(self, req: Request) -> int:
        return estimate_tokens(list(req.messages), req.params.get("max_tokens"))
