"""A pool of OpenAI-compatible servers: requests spread over them, a stopped server is taken out, every row
exactly once, and the pool's identity names no server (adding one keeps the cached rows)."""

from __future__ import annotations

import asyncio
import threading
import time

from llm_servers import FaultServer

from dreammake.llm.handle import llm
from dreammake.llm.pool import ServerPool

DREAMFILE = """
m = llm("openai/test-model", api_base={bases!r}, concurrency=8, max_retries=8, backoff_base=0.05)
rule("q", output="t/q.parquet", run=lambda: [{{"q": f"question {{i}}"}} for i in range({n})])
rule("a", input="t/q.parquet", output="t/a.parquet",
     run=rules.process_with_prompt(llm=m, instruction="Answer.", input_column="q", output_column="a"))
"""


def test_most_free_slots_first_and_a_failed_server_is_set_aside():
    async def main() -> None:
        pool = ServerPool(["http://a/v1", "http://b/v1"], retry_dead_after_s=60)
        first, second = await pool.acquire(), await pool.acquire()
        assert {first.server.url, second.server.url} == {s.url for s in pool.servers}  # one each
        pool.release(first, failed=True)
        assert (await pool.acquire()).server is second.server  # the failed one is out
        assert (await pool.acquire()).server is second.server
        pool.servers[0].dead_until = 0.0  # its time out is over: tried again
        assert (await pool.acquire()).server is pool.servers[0]

    asyncio.run(main())


def test_a_stopped_server_costs_no_row(project):
    servers = [FaultServer(latency=0.01), FaultServer(latency=0.01)]
    n = 300
    try:
        project.dreamfile(DREAMFILE.format(bases=[s.api_base for s in servers], n=n))

        def stop_first() -> None:
            while sum(servers[0].answered.values()) < 40:
                time.sleep(0.005)
            servers[0].close()

        stopper = threading.Thread(target=stop_first)
        stopper.start()
        project.run()
        stopper.join(10)
        rows = project.read("t/a.parquet")
        assert [r["q"] for r in rows] == [f"question {i}" for i in range(n)]
        assert all(r["a"].startswith("echo: ") and r["a"].endswith(r["q"]) for r in rows)
        answered = [sum(s.answered.values()) for s in servers]
        assert answered[0] >= 40 and answered[1] >= n - answered[0]
    finally:
        servers[1].close()


def test_a_pools_identity_names_no_server():
    one = llm("openai/test-model", api_base=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
    more = llm("openai/test-model", api_base=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1",
                                              "http://127.0.0.1:3/v1"])
    assert one.identity() == more.identity()
    assert "127.0.0.1" not in str(one.identity())
    assert llm("openai/test-model", api_base="http://127.0.0.1:1/v1").identity() != one.identity()
