"""The row-level LLM cache in the project's DuckDB (`llm_cache` table).

Key = xxh3-128 over (model identity, rendered messages, generation params, seed, sample
index). A prompt rule looks up all its keys in one query and sends only the misses to
the model; results are committed in small batches as they arrive, so a killed run
loses at most the rows in flight. Copying `.dreammake/` shares every result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import xxhash

from dreammake.fingerprint import canonical

SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR, text VARCHAR, finish_reason VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp);
"""
COLUMNS = ("key", "model", "text", "finish_reason", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s")


class KeyMaker:
    """Computes request keys fast: the model and params part is hashed once per rule."""

    def __init__(self, model_hash: str, params: dict[str, Any]):
        self.prefix = f"{model_hash}\x1e{canonical(params)}\x1e"

    def key(self, messages: Sequence[dict[str, str]], seed: int | None, sample_index: int) -> str:
        h = xxhash.xxh3_128(self.prefix.encode())
        for m in messages:
            content = m["content"]
            h.update(f"{m['role']}\x1f{len(content)}\x1f{content}\x1e".encode())
        h.update(f"{seed}\x1e{sample_index}".encode())
        return h.hexdigest()


class RowCache:
    """Reads and writes cached generations through its own DuckDB cursor (one per job thread)."""

    def __init__(self, db: Any):
        self.db = db.cursor()
        self.db.execute(SCHEMA)
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._last_commit = time.monotonic()

    def lookup(self, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """key → (text, finish_reason, prompt_tokens, completion_tokens, cost_usd) for the keys present."""
        if not keys:
            return {}
        import pyarrow as pa

        wanted = pa.table({"key": pa.array(list(dict.fromkeys(keys)), pa.string())})
        self.db.register("wanted_keys", wanted)
        try:
            rows = self.db.execute(
                "SELECT c.key, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens, c.cost_usd"
                " FROM llm_cache c JOIN wanted_keys w ON c.key = w.key").fetchall()
        finally:
            self.db.unregister("wanted_keys")
        return {r[0]: r[1:] for r in rows}

    def add(self, key: str, model: str, response: Any) -> None:
        """Queue one result; it is committed with the next batch."""
        with self._lock:
            self._pending.append((key, model, response.text, response.finish_reason, response.prompt_tokens,
                                  response.completion_tokens, response.cost_usd, response.latency_s))

    def commit_if_due(self, every_rows: int = 256, every_s: float = 0.5) -> None:
        """Commit queued results when enough rows or time have gathered."""
        if len(self._pending) >= every_rows or (self._pending and time.monotonic() - self._last_commit >= every_s):
            self.commit()

    def commit(self) -> None:
        """Write every queued result (one transaction)."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        import pyarrow as pa

        batch = pa.table({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)})
        self.db.register("new_rows", batch)
        try:
            self.db.execute("INSERT OR IGNORE INTO llm_cache (key, model, text, finish_reason, prompt_tokens,"
                            " completion_tokens, cost_usd, latency_s) SELECT * FROM new_rows")
        finally:
            self.db.unregister("new_rows")
        self._last_commit = time.monotonic()

    def close(self) -> None:
        """Commit what is left and release the cursor."""
        self.commit()
        self.db.close()


def stats(db: Any) -> dict[str, Any]:
    """Totals for `dreammake cache stats`."""
    db.execute(SCHEMA)
    rows = db.execute("SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd)"
                      " FROM llm_cache GROUP BY model ORDER BY 2 DESC").fetchall()
    return {"entries": sum(r[1] for r in rows),
            "models": [{"model": r[0], "entries": r[1], "prompt_tokens": r[2] or 0, "completion_tokens": r[3] or 0,
                        "cost_usd": r[4] or 0.0} for r in rows]}
