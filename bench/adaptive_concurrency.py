"""Adaptive concurrency (AIMD per server) vs a fixed `concurrency`, on servers of unknown capacity.

Starts OpenAI-compatible aiohttp servers on 127.0.0.1 in a separate process, each answering after `--latency`
seconds and holding at most its capacity of requests: beyond it, a `429` server turns requests away (a rate
limiting proxy) and a `queue` server makes them wait (vLLM's scheduler). Each scenario sends N requests through
the openai_http backend twice in the same run: with a fixed `concurrency` (the old default, 16) and adaptive
(no `concurrency=`), and prints requests/s, their ratio, the 429s each way and the limits the adaptive run ended
with. Retries are raised (`--max-retries 50`) so a fixed limit that keeps being turned away still finishes; with
`--max-retries 5` (llm()'s default) a run that gives up on a request shows `failed@ROWS` (rows answered by then).

    python bench/adaptive_concurrency.py [--requests 1000] [--latency 0.05] [--fixed 16] [--max-retries 50]

Scenarios: `high` (one queue server of capacity 256), `low` (one 429 server of capacity 4), `pool` (a 429
server of capacity 4 and a queue server of capacity 256 behind one `api_base=[...]`: the awkward shape, where
spreading evenly overloads one server and starves the other).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "bench-model"
SCENARIOS: dict[str, list[tuple[str, int]]] = {  # name -> servers as (shape, capacity)
    "high": [("queue", 256)],
    "low": [("429", 4)],
    "pool": [("429", 4), ("queue", 256)],
}


def _serve(shapes: list[tuple[str, int]], ports: list[int], latency: float, ready) -> None:
    from aiohttp import web

    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }).encode()

    def app_for(shape: str, capacity: int) -> web.Application:
        stats = {"in_flight": 0, "rejected": 0}
        gate = asyncio.Semaphore(capacity)

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            if shape == "429" and stats["in_flight"] >= capacity:
                stats["rejected"] += 1
                return web.json_response({"error": {"message": "too many requests"}}, status=429)
            stats["in_flight"] += 1
            try:
                async with gate:
                    await asyncio.sleep(latency)
            finally:
                stats["in_flight"] -= 1
            return web.Response(body=body, content_type="application/json")

        async def rejected(request: web.Request) -> web.Response:
            return web.json_response(stats["rejected"])

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        app.router.add_get("/rejected", rejected)
        return app

    async def main() -> None:
        for (shape, capacity), port in zip(shapes, ports):
            runner = web.AppRunner(app_for(shape, capacity), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rejected(ports: list[int]) -> int:
    """429s the servers sent so far."""
    return sum(json.load(urllib.request.urlopen(f"http://127.0.0.1:{p}/rejected", timeout=10)) for p in ports)


def run(ports: list[int], n: int, concurrency: int | None, max_retries: int) -> tuple[str, int, list[int]]:
    """Requests/s (or how it failed), 429s, and the servers' limits at the end."""
    from dreammake.llm.base import LLMError, Request
    from dreammake.llm.openai_http import OpenAIHTTPBackend

    bases = [f"http://127.0.0.1:{p}/v1" for p in ports]
    backend = OpenAIHTTPBackend(f"openai/{MODEL}", api_base=bases if len(bases) > 1 else bases[0],
                                api_key_env=None, concurrency=concurrency, max_retries=max_retries)
    backend.notify = lambda text: None
    requests = [Request(messages=({"role": "user", "content": f"request {i}: say ok"},), params={"max_tokens": 8})
                for i in range(n)]
    got: list[int] = []
    before = rejected(ports)
    t0 = time.perf_counter()
    try:
        backend.generate(requests, lambda i, r: got.append(i), threading.Event())
        speed = f"{n / (time.perf_counter() - t0):.0f}"
    except LLMError:
        speed = f"failed@{len(got)}"  # a request was turned away max_retries + 1 times: the build would fail
    finally:
        backend.close()
    return speed, rejected(ports) - before, [s.limit.limit for s in backend.pool.servers]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--fixed", type=int, default=16, help="the fixed concurrency to compare with")
    ap.add_argument("--max-retries", type=int, default=50, help="5 is the default of llm(...)")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = ap.parse_args()

    print(f"{args.requests} requests per run, server latency {args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs; "
          f"fixed = concurrency={args.fixed}, adaptive = no concurrency=")
    print(f"{'scenario':>9} {'fixed/s':>8} {'adapt/s':>8} {'adapt/fixed':>12} {'429s fixed':>11} "
          f"{'429s adapt':>11}  limits at the end")
    ctx = mp.get_context("spawn")
    for name in args.scenarios:
        shapes = SCENARIOS[name]
        ports = [free_port() for _ in shapes]
        ready = ctx.Event()
        server = ctx.Process(target=_serve, args=(shapes, ports, args.latency, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(30):
                raise SystemExit("servers did not start")
            fixed, fixed_429, _ = run(ports, args.requests, args.fixed, args.max_retries)
            adaptive, adaptive_429, limits = run(ports, args.requests, None, args.max_retries)
            ratio = f"{float(adaptive) / float(fixed):.2f}" if fixed.isdigit() and adaptive.isdigit() else "-"
            print(f"{name:>9} {fixed:>8} {adaptive:>8} {ratio:>12} {fixed_429:>11} "
                  f"{adaptive_429:>11}  {limits}", flush=True)
        finally:
            server.terminate()
            server.join(10)


if __name__ == "__main__":
    main()
