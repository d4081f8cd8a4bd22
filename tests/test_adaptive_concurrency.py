"""Adaptive concurrency (AIMD) per server: the limit alone, the pool's slots, and builds against local servers that
push back above a capacity, that are fast, or that form a pool of unequal servers; a given `concurrency=` stays."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest
from llm_servers import ThreadedServer

from dreammake.llm.adaptive import DEFAULT_START, AdaptiveLimit
from dreammake.llm.base import Request
from dreammake.llm.openai_http import OpenAIHTTPBackend
from dreammake.llm.pool import ServerPool

# ------------------------------------------------------------------ the limit alone


def fill(limit: AdaptiveLimit) -> int:
    """Take every free slot (so the limit binds); the epoch they were taken in."""
    epoch = limit.epoch
    while limit.has_room:
        epoch = limit.take()
    return epoch


def window(limit: AdaptiveLimit, latency: float = 0.1) -> None:
    """One window of answers with every slot taken."""
    fill(limit)
    for _ in range(limit.limit):
        limit.on_success(latency)


def test_slow_start_grows_by_half_a_window_then_one_after_a_push_back():
    limit = AdaptiveLimit(16)
    window(limit)
    assert limit.limit == 24
    window(limit)
    assert limit.limit == 36
    limit.on_overload(limit.epoch, "429")
    assert limit.limit == 18
    window(limit)
    assert limit.limit == 19  # additive from now on
    window(limit)
    assert limit.limit == 20


def test_a_push_back_halves_once_per_round_trip_down_to_the_floor():
    limit = AdaptiveLimit(16)
    old = fill(limit)
    limit.on_overload(old, "429")
    assert limit.limit == 8
    limit.on_overload(old, "429")  # sent before the decrease: not counted again
    assert limit.limit == 8
    for _ in range(10):
        limit.on_overload(limit.epoch, "timeout")
    assert limit.limit == 1


def test_no_growth_while_latency_climbs_or_while_the_limit_does_not_bind():
    limit = AdaptiveLimit(16)
    window(limit, 0.1)
    assert limit.limit == 24 and limit.best == pytest.approx(0.1)
    window(limit, 0.2)  # twice the best window: the server queues
    assert limit.limit == 24
    window(limit, 0.12)  # within the tolerance again: grows, now additively
    assert limit.limit == 25
    while limit.in_use:
        limit.release()
    limit.take()
    for _ in range(100):  # one slot of 25 in use: answers say nothing about more
        limit.on_success(0.1)
    assert limit.limit == 25


def test_the_ceiling_holds_and_a_fixed_limit_never_moves():
    limit = AdaptiveLimit(16, ceiling=20)
    for _ in range(5):
        window(limit)
    assert limit.limit == 20
    fixed = AdaptiveLimit.fixed(4)
    window(fixed)
    fixed.on_overload(fixed.epoch, "429")
    assert fixed.limit == 4 and not fixed.adaptive


def test_only_a_doubling_or_halving_is_reported():
    lines: list[str] = []
    limit = AdaptiveLimit(16, name="http://h/v1", say=lines.append)
    window(limit)  # 24: not yet twice 16
    assert lines == []
    window(limit)  # 36
    limit.on_overload(limit.epoch, "429")  # 18
    window(limit)  # 19
    window(limit)  # 20
    limit.on_overload(limit.epoch, "429")  # 10: not half of 18
    limit.on_overload(limit.epoch, "503")  # 5
    assert lines == ["http://h/v1: concurrency 16 → 36 (answers keep pace)",
                     "http://h/v1: concurrency 36 → 18 (429)", "http://h/v1: concurrency 18 → 5 (503)"]


# ------------------------------------------------------------------ the pool's slots


def test_waiters_are_served_in_turn_and_a_cancelled_one_gives_its_slot_back():
    async def main() -> None:
        pool = ServerPool(["http://a/v1"], concurrency=1)
        held = await pool.acquire()
        order: list[int] = []

        async def wait(i: int) -> None:
            slot = await pool.acquire()
            order.append(i)
            pool.release(slot)

        tasks = [asyncio.ensure_future(wait(i)) for i in range(3)]
        await asyncio.sleep(0)
        pool.release(held)  # handed to task 0 at once
        tasks[0].cancel()  # ... which is cancelled before it runs: the slot goes on to 1
        await asyncio.gather(*tasks, return_exceptions=True)
        assert order == [1, 2]
        assert pool.servers[0].limit.in_use == 0 and pool.total.in_use == 0

    asyncio.run(main())


def test_a_fixed_concurrency_bounds_the_whole_pool_and_adaptive_limits_are_per_server():
    async def main() -> None:
        fixed = ServerPool(["http://a/v1", "http://b/v1"], concurrency=3)
        slots = [await fixed.acquire() for _ in range(3)]
        assert Counter(s.server.url for s in slots) == {"http://a/v1": 2, "http://b/v1": 1}
        assert fixed.capacity == 3 and fixed._choose() is None
        adaptive = ServerPool(["http://a/v1", "http://b/v1"])
        slots = [await adaptive.acquire() for _ in range(2 * DEFAULT_START)]
        assert [s.limit.in_use for s in adaptive.servers] == [DEFAULT_START, DEFAULT_START]
        assert adaptive._choose() is None
        adaptive.release(slots[0], overload="429")  # only that server's limit shrinks
        assert [s.limit.limit for s in adaptive.servers] == [DEFAULT_START // 2, DEFAULT_START]

    asyncio.run(main())


# ------------------------------------------------------------------ against servers


class CapacityServer(ThreadedServer):
    """An OpenAI-compatible server answering after `latency` seconds, with a 429 (no Retry-After) for each request
    beyond `capacity` in flight (None: no bound). Records the most in flight and the 429s it sent."""

    def __init__(self, capacity: int | None, latency: float):
        self.capacity, self.latency = capacity, latency
        self.in_flight = self.most_in_flight = self.rejected = 0
        self.answered: Counter[str] = Counter()
        self.in_flight_at_start: list[int] = []  # in flight (this one included) as each accepted request began
        super().__init__()

    def routes(self, app: Any) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.in_flight += 1
            try:
                if self.capacity is not None and self.in_flight > self.capacity:
                    self.rejected += 1
                    return web.json_response({"error": {"message": "too many requests"}}, status=429)
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                self.in_flight_at_start.append(self.in_flight)
                await asyncio.sleep(self.latency)
            finally:
                self.in_flight -= 1
            key = body["messages"][-1]["content"]
            self.answered[key] += 1
            return web.json_response({
                "id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"echo: {key}"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            })

        app.router.add_post("/v1/chat/completions", handle)


@pytest.fixture
def servers():
    made: list[CapacityServer] = []

    def make(capacity: int | None, latency: float) -> CapacityServer:
        made.append(CapacityServer(capacity, latency))
        return made[-1]

    yield make
    for s in made:
        s.close()


def generate(api_base: str | list[str], n: int, **options: Any) -> OpenAIHTTPBackend:
    """Send n distinct requests through a fresh backend; every one answered once. Returns the (closed) backend."""
    backend = OpenAIHTTPBackend("openai/test-model", api_base=api_base, api_key_env=None, max_retries=10,
                                backoff_base=0.02, backoff_max=0.2, **options)
    got: dict[int, str] = {}
    try:
        backend.generate([Request(({"role": "user", "content": f"q{i}"},)) for i in range(n)],
                         lambda i, r: got.setdefault(i, r.text), threading.Event())
    finally:
        backend.close()
    assert got == {i: f"echo: q{i}" for i in range(n)}
    return backend


DREAMFILE = """
m = llm("openai/test-model", api_base={base!r}, max_retries=10, backoff_base=0.02, backoff_max=0.2{extra})
rule("q", output="t/q.parquet", run=lambda: [{{"q": f"question {{i}}"}} for i in range({n})])
rule("a", input="t/q.parquet", output="t/a.parquet",
     run=rules.process_with_prompt(llm=m, instruction="Answer.", input_column="q", output_column="a"))
"""


def build(project, base: str, n: int, extra: str = "") -> str:
    project.dreamfile(DREAMFILE.format(base=base, n=n, extra=extra))
    out = project.run()
    rows = project.read("t/a.parquet")
    assert [r["q"] for r in rows] == [f"question {i}" for i in range(n)]
    assert all(r["a"].endswith(r["q"]) for r in rows)
    return out


def test_a_server_that_pushes_back_above_k_gets_about_k(project, servers):
    k, n = 6, 400
    server = servers(k, 0.03)
    out = build(project, server.api_base, n)
    assert len(server.answered) == n and set(server.answered.values()) == {1}  # every row exactly once
    assert f"{server.api_base}: concurrency 16 → 8 (429)" in out
    assert server.rejected <= n // 4, server.rejected  # a fixed 16 would be turned away most of the time
    assert max(server.in_flight_at_start[n // 2:]) >= k - 1  # kept busy near its capacity to the end
    backend = generate(server.api_base, n)  # the limit itself ends between the sawtooth's ends
    assert (k + 1) // 2 <= backend.pool.servers[0].limit.limit <= k + 1


def test_a_fast_server_gets_more_than_the_start(servers):
    server = servers(None, 0.1)
    backend = generate(server.api_base, 300)
    assert backend.pool.servers[0].limit.limit > DEFAULT_START
    assert server.most_in_flight > DEFAULT_START and server.rejected == 0


def test_each_server_of_a_pool_gets_its_own_limit(servers):
    small, large = servers(4, 0.05), servers(None, 0.05)
    backend = generate([small.api_base, large.api_base], 600)
    limits = [s.limit.limit for s in backend.pool.servers]
    assert limits[0] <= 5 and limits[1] > DEFAULT_START, limits
    assert small.answered and small.rejected <= 600 // 10 and large.most_in_flight > DEFAULT_START


def test_a_given_concurrency_stays_fixed(project, servers):
    server = servers(None, 0.05)
    out = build(project, server.api_base, 120, extra=", concurrency=4")
    assert server.most_in_flight == 4 and server.rejected == 0
    assert "concurrency" not in out
    backend = generate(server.api_base, 120, concurrency=4)
    assert backend.pool.servers[0].limit.limit == 4 and server.most_in_flight == 4
