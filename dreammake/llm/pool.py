"""A pool of OpenAI-compatible servers that serve one model: `llm("openai/NAME", api_base=[url1, url2, ...])`.

Each request goes to the live server with the fewest requests outstanding. A server that fails a request
(connection refused or reset, no answer in time, a 5xx) is taken out of the pool for a while and tried
again after that; the failed request is retried on another server by the usual bounded retries. The
servers of a pool are taken to serve the same model, so a pool's identity names no server: adding or
removing one keeps every cached row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .util import public_url

POOL_IDENTITY = "pool"  # the api_base entry of a pool's identity
RETRY_DEAD_AFTER_S = 10.0


@dataclass
class Server:
    """One server of a pool: its chat-completions URL, requests outstanding, and when it may be tried again."""

    url: str
    outstanding: int = 0
    dead_until: float = 0.0
    failures: int = 0


class ServerPool:
    """Least-outstanding-requests choice over servers, with failed servers set aside (see the module docstring).

    Used from one asyncio loop, so it needs no lock."""

    def __init__(self, urls: list[str], retry_dead_after_s: float = RETRY_DEAD_AFTER_S):
        if not urls:
            raise ValueError("a server pool needs at least one api_base")
        self.servers = [Server(url) for url in urls]
        self.retry_dead_after_s = retry_dead_after_s

    def acquire(self) -> Server:
        """The server for the next request (counted as outstanding until `release`)."""
        now = time.monotonic()
        live = [s for s in self.servers if s.dead_until <= now]
        server = min(live, key=lambda s: s.outstanding) if live else min(self.servers, key=lambda s: s.dead_until)
        server.outstanding += 1
        return server

    def release(self, server: Server, failed: bool = False) -> None:
        """The request on `server` ended; a failure takes the server out for a while."""
        server.outstanding -= 1
        if failed:
            server.failures += 1
            server.dead_until = time.monotonic() + self.retry_dead_after_s
        else:
            server.failures = 0
            server.dead_until = 0.0

    def describe(self, path: str = "") -> str:
        """The servers' URLs (with `path` under each), without credentials: for messages."""
        return ", ".join(public_url(f"{s.url}/{path}" if path else s.url) or s.url for s in self.servers)


def base_identity(api_base: str | list[str] | None) -> str | None:
    """The `api_base` entry of a model identity: one server's public URL, or `pool` for a pool."""
    if isinstance(api_base, (list, tuple)):
        return POOL_IDENTITY if len(api_base) > 1 else public_url(api_base[0])
    return public_url(api_base)
