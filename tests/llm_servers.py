"""LLM test fixtures (imported by conftest.py): offline mode, a per-session dreammake cache,
the converted SmolLM2 folder,
a real `transformers serve` subprocess, and a fault-injecting OpenAI-compatible server."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def dm_cache(tmp_path_factory) -> Path:
    """A fresh dreammake cache for the whole session (so checkpoint creation is exercised)."""
    root = tmp_path_factory.mktemp("dreammake-cache")
    old = os.environ.get("DREAMMAKE_CACHE")
    os.environ["DREAMMAKE_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("DREAMMAKE_CACHE", None)
    else:
        os.environ["DREAMMAKE_CACHE"] = old


@pytest.fixture(scope="session")
def smol_checkpoint(dm_cache) -> Path:
    from dreammake.llm.models import checkpoint_for

    return checkpoint_for(ALIAS)


@pytest.fixture(scope="session")
def smol_backend(smol_checkpoint):
    from dreammake.llm.transformers_backend import TransformersBackend

    b = TransformersBackend(ALIAS, batch_size=8, threads=2)
    yield b
    b.close()


@pytest.fixture(scope="session")
def transformers_server(smol_checkpoint):
    """`transformers serve` on the converted SmolLM2 folder; yields (api_base, model_id)."""
    exe = Path(sys.executable).with_name("transformers")
    port = free_port()
    log = open(smol_checkpoint.parent / f"serve-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else shutil.which("transformers"), "serve", str(smol_checkpoint),
         "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("transformers serve did not become ready in 180 s")
            time.sleep(0.5)
        yield base + "/v1", str(smol_checkpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def trigram_vector(text: str, dims: int = 64) -> list[float]:
    """Counts of the text's character trigrams hashed into `dims` buckets (a stand-in embedding)."""
    import zlib

    vector = [0.0] * dims
    padded = f"  {text.lower()} "
    for i in range(len(padded) - 2):
        vector[zlib.crc32(padded[i:i + 3].encode()) % dims] += 1.0
    return vector


class ThreadedServer:
    """An aiohttp server on 127.0.0.1 with its own thread and event loop; a subclass sets its fields, then calls
    `super().__init__()`, and builds its routes in `routes(app)`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._ready.wait(10)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: Any) -> None:  # pragma: no cover - each server has its own
        raise NotImplementedError

    def _run(self) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        app = web.Application()
        self.routes(app)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FaultServer(ThreadedServer):
    """An OpenAI-compatible aiohttp server on its own thread with added latency.

    The last user message selects behaviour: ``429x2 ...`` fails the first 2 attempts with 429,
    ``500x1 ...`` the first with 500, ``500xinf`` always, ``401`` always answers 401 (echoing the
    bearer token, as some real APIs partially do), ``400`` answers 400. Answers name `served_model` (default: the
    model asked for) and carry `system_fingerprint` when set. `/v1/embeddings` answers with character-trigram
    count vectors (similar texts are near), recording every text it embeds in `embedded`.
    """

    def __init__(self, latency: float = 0.02):
        self.latency = latency
        self.attempts: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.authorizations: list[str] = []  # the Authorization header of every request
        self.served_model: str | None = None
        self.embedded: list[str] = []
        self.system_fingerprint: str | None = None
        super().__init__()

    def routes(self, app: Any) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.bodies.append(body)
            self.authorizations.append(request.headers.get("Authorization", ""))
            key = body["messages"][-1]["content"]
            self.attempts[key] += 1
            n = self.attempts[key]
            await asyncio.sleep(self.latency)
            head = key.split()[0] if key else ""
            if head.startswith("429x") and n <= int(head[4:]):
                return web.json_response({"error": {"message": "rate limited"}}, status=429,
                                         headers={"Retry-After": "0"})
            if head.startswith("500x") and (head[4:] == "inf" or n <= int(head[4:])):
                return web.json_response({"error": {"message": "boom"}}, status=500)
            if head == "401":
                auth = request.headers.get("Authorization", "")
                return web.json_response(
                    {"error": {"message": f"Incorrect API key provided: {auth[7:]}."}}, status=401)
            if head == "400":
                return web.json_response({"error": {"message": "bad max_tokens"}}, status=400)
            self.answered[key] += 1
            return web.json_response({
                "id": "x", "object": "chat.completion", "model": self.served_model or body["model"],
                **({"system_fingerprint": self.system_fingerprint} if self.system_fingerprint else {}),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"echo: {key}"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            })

        async def embeddings(request: web.Request) -> web.Response:
            body = await request.json()
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self.embedded += texts
            return web.json_response({"object": "list", "model": body["model"], "usage": {"prompt_tokens": len(texts)},
                                      "data": [{"object": "embedding", "index": i, "embedding": trigram_vector(t)}
                                               for i, t in reversed(list(enumerate(texts)))]})

        app.router.add_post("/v1/chat/completions", handle)
        app.router.add_post("/v1/embeddings", embeddings)


@pytest.fixture
def fault_server():
    s = FaultServer()
    yield s
    s.close()
