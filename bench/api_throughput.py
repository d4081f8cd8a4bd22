"""Throughput of the openai_http backend vs plain litellm.acompletion vs a bare aiohttp client.

Starts an OpenAI-compatible aiohttp server on 127.0.0.1 in a separate process (each answer after
100 ms), then sends N requests at each concurrency three ways and prints requests/s and ratios.

    python bench/api_throughput.py [--requests 2000] [--concurrency 16 64 256] [--latency 0.1]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "bench-model"


def _serve(port: int, latency: float, ready) -> None:
    from aiohttp import web

    body = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }).encode()

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(latency)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request {i}: say ok"}]


def run_backend(api_base: str, n: int, conc: int) -> float:
    from dreammake.llm.base import Request
    from dreammake.llm.openai_http import OpenAIHTTPBackend

    b = OpenAIHTTPBackend(f"openai/{MODEL}", api_base=api_base, api_key_env=None,
                          concurrency=conc)
    reqs = [Request(messages=tuple(_messages(i)), params={"max_tokens": 8}) for i in range(n)]
    got = []
    b.generate(reqs[:conc], lambda i, r: None, threading.Event())  # warm the connection pool
    t0 = time.perf_counter()
    b.generate(reqs, lambda i, r: got.append(i), threading.Event())
    dt = time.perf_counter() - t0
    b.close()
    assert len(got) == n
    return n / dt


def run_bare(api_base: str, n: int, conc: int) -> float:
    """The leanest plain client: one session, `conc` workers pulling from a shared iterator."""
    import aiohttp

    async def main() -> float:
        url = api_base + "/chat/completions"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
            async def batch(count: int) -> list[str]:
                out: list[str] = []
                it = iter(range(count))

                async def worker() -> None:
                    for i in it:
                        async with s.post(url, json={"model": MODEL, "messages": _messages(i),
                                                     "max_tokens": 8}) as r:
                            data = await r.json()
                        out.append(data["choices"][0]["message"]["content"])

                await asyncio.gather(*(worker() for _ in range(conc)))
                return out

            await batch(conc)  # warm the connection pool
            t0 = time.perf_counter()
            out = await batch(n)
            dt = time.perf_counter() - t0
        assert len(out) == n
        return n / dt

    return asyncio.run(main())


def run_litellm(api_base: str, n: int, conc: int) -> float:
    from dreammake.llm.litellm_backend import import_litellm

    litellm = import_litellm()

    async def main() -> float:
        sem = asyncio.Semaphore(conc)

        async def one(i: int) -> str:
            async with sem:
                r = await litellm.acompletion(model=f"openai/{MODEL}", messages=_messages(i),
                                              api_base=api_base, api_key="none", max_tokens=8,
                                              max_retries=0)
                return r.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(conc)))
        t0 = time.perf_counter()
        out = await asyncio.gather(*(one(i) for i in range(n)))
        dt = time.perf_counter() - t0
        assert len(out) == n
        return n / dt

    return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--latency", type=float, default=0.1)
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, args.latency, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        raise SystemExit("server did not start")
    api_base = f"http://127.0.0.1:{port}/v1"
    t_import = time.perf_counter()
    from dreammake.llm.litellm_backend import import_litellm

    import_litellm()
    t_import = time.perf_counter() - t_import

    n = args.requests
    print(f"{n} requests per run, server latency {args.latency * 1000:.0f} ms, "
          f"{os.cpu_count()} CPUs, litellm import {t_import:.1f} s")
    print(f"{'conc':>5} {'ideal':>8} {'backend':>9} {'bare':>9} {'litellm':>9} "
          f"{'backend/bare':>13} {'backend/litellm':>16}")
    try:
        for conc in args.concurrency:
            ideal = conc / args.latency
            bare = run_bare(api_base, n, conc)
            backend = run_backend(api_base, n, conc)
            lite = run_litellm(api_base, n, conc)
            print(f"{conc:>5} {ideal:>8.0f} {backend:>9.0f} {bare:>9.0f} {lite:>9.0f} "
                  f"{backend / bare:>13.2f} {backend / lite:>16.2f}", flush=True)
    finally:
        server.terminate()
        server.join(10)


if __name__ == "__main__":
    main()
