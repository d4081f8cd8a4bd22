"""An adaptive concurrency limit for one server: additive increase, multiplicative decrease (AIMD).

The right number of requests to keep in flight at a self-hosted server is unknown, so where the Dreamfile
fixes no `concurrency=`, each server gets an `AdaptiveLimit` that learns it from the answers:

- **increase**: after a window of answers (as many as the limit) whose median latency stays within
  `LATENCY_TOLERANCE` of the best window seen, the limit grows: by half at first (slow start, until the
  server first pushes back or slows down), then by 1 per window; never above the ceiling;
- **hold**: a window slower than that grows nothing (the server queues: more in flight buys no speed);
- **decrease**: a 429, a 503/504 or a timeout halves it (never below the floor), once per round trip:
  a push-back from a request sent before the last decrease is not counted again.

Answers count towards a window only while the limit binds (every slot taken), so a rule with few requests
left grows nothing. A change is reported (`say`) only when the limit has at least doubled or halved since
the last line: `http://node1:8000/v1: concurrency 16 → 8 (429)`.

A fixed limit (`AdaptiveLimit.fixed(n)`: the Dreamfile's `concurrency=n`) never changes. The limit only
counts; waiting for a free slot is the server pool's (`dreammake.llm.pool`). It is used from one asyncio
loop, so it needs no lock, and holds no asyncio object, so what it learned outlives the loop.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

DEFAULT_START = 16  # the limit a server starts with
DEFAULT_CEILING = 256  # the most requests one server gets at once
LATENCY_TOLERANCE = 1.5  # a window may be this much slower than the best window and still grow the limit
DECREASE = 0.5  # the limit is multiplied by this on a push-back
REPORT_RATIO = 2.0  # say so when the limit moved by this factor since the last line


class AdaptiveLimit:
    """How many requests one server may have at once (see the module docstring)."""

    def __init__(self, start: int = DEFAULT_START, *, ceiling: int = DEFAULT_CEILING, floor: int = 1,
                 name: str = "", say: Callable[[str], None] | None = None):
        if not 1 <= floor <= start <= ceiling:
            raise ValueError(f"need 1 <= floor <= start <= ceiling, got {floor}, {start}, {ceiling}")
        self.limit = start
        self.floor, self.ceiling = floor, ceiling
        self.name, self.say = name, say
        self.in_use = 0
        self.epoch = 0  # moves on every decrease; a slot remembers the epoch it was taken in
        self.best: float | None = None  # the lowest window median latency seen, in seconds
        self._slow_start = True
        self._window: list[float] = []
        self._reported = start

    @classmethod
    def fixed(cls, n: int) -> AdaptiveLimit:
        """A limit that stays `n`."""
        n = max(1, int(n))
        return cls(n, ceiling=n, floor=n)

    @property
    def adaptive(self) -> bool:
        return self.floor < self.ceiling

    @property
    def has_room(self) -> bool:
        return self.in_use < self.limit

    def take(self) -> int:
        """Take a slot (the caller checked `has_room`); returns the epoch to pass to `on_overload`."""
        self.in_use += 1
        return self.epoch

    def release(self) -> None:
        """Give a slot back."""
        self.in_use -= 1

    def on_success(self, latency: float) -> None:
        """An answer came after `latency` seconds (its slot still held)."""
        if not self.adaptive or self.in_use < self.limit:
            return
        self._window.append(latency)
        if len(self._window) < self.limit:
            return
        median = statistics.median(self._window)
        self._window.clear()
        self.best = median if self.best is None else min(self.best, median)
        if median > self.best * LATENCY_TOLERANCE:
            self._slow_start = False  # the server queues: hold
            return
        step = max(1, self.limit // 2) if self._slow_start else 1
        self._set(min(self.ceiling, self.limit + step), "answers keep pace")

    def on_overload(self, epoch: int, reason: str) -> None:
        """The server pushed back (`reason`: `429`, `503`, `504`, `timeout`) on a slot taken in `epoch`."""
        if not self.adaptive or epoch != self.epoch:
            return
        self._slow_start = False
        self.epoch += 1
        self._set(max(self.floor, int(self.limit * DECREASE)), reason)

    def _set(self, limit: int, reason: str) -> None:
        self.limit = limit
        self._window.clear()
        if self.say is not None and (limit >= self._reported * REPORT_RATIO or limit * REPORT_RATIO <= self._reported):
            self.say(f"{self.name}: concurrency {self._reported} → {limit} ({reason})")
            self._reported = limit
