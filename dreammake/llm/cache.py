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


def _arrow_types() -> list[tuple[str, Any]]:
    import pyarrow as pa

    kinds = [pa.string()] * 4 + [pa.int32()] * 2 + [pa.float64()] * 2
    return list(zip(COLUMNS, kinds))


class KeyMaker:
    """Computes request keys fast: the model and params part is encoded once per rule.

    The key covers the messages exactly (role, length and text of each), the seed and the
    sample index; a plain user turn with an optional fixed system prompt takes a fast path.
    """

    def __init__(self, model_hash: str, params: dict[str, Any], system: str | None = None):
        self.prefix = f"{model_hash}\x1e{canonical(params)}\x1e"
        self.system_part = f"system\x1f{len(system)}\x1f{system}\x1e" if system else ""

    def key(self, turn: str | Sequence[dict[str, str]], seed: int | None, sample_index: int) -> str:
        """Key of one request: `turn` is the user message (after the fixed system prompt) or a full message list."""
        if isinstance(turn, str):
            body = f"{self.system_part}user\x1f{len(turn)}\x1f{turn}\x1e"
        else:
            body = "".join(f"{m['role']}\x1f{len(m['content'])}\x1f{m['content']}\x1e" for m in turn)
        return xxhash.xxh3_128_hexdigest(f"{self.prefix}{body}{seed}\x1e{sample_index}".encode())


class RowCache:
    """Reads and writes cached generations through its own DuckDB cursor (one per job thread)."""

    def __init__(self, db: Any):
        self.db = db.cursor()
        self.db.execute(SCHEMA)
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._last_commit = time.monotonic()

    def lookup(self, keys: Sequence[str]) -> Any:
        """The cached text of every key, in order, as an Arrow table (text, finish_reason); nulls are misses.

        Keys go in as one list parameter: registering an Arrow table would make DuckDB import
        pandas (~0.6 s) on first use."""
        relation = self.db.sql(
            "SELECT c.text, c.finish_reason FROM (SELECT unnest($keys) AS key, generate_subscripts($keys, 1) AS i) w"
            " LEFT JOIN llm_cache c ON c.key = w.key ORDER BY w.i", params={"keys": list(keys)})
        to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 renamed arrow()
        return to_arrow()

    def add(self, key: str, model: str, response: Any) -> None:
        """Queue one result; it is committed with the next batch."""
        with self._lock:
            self._pending.append((key, model, response.text, response.finish_reason, response.prompt_tokens,
                                  response.completion_tokens, response.cost_usd, response.latency_s))

    def commit_if_due(self, every_rows: int = 10_000, every_s: float = 0.5) -> None:
        """Commit queued results every half second (a DuckDB commit costs tens of ms), or when many gather."""
        if len(self._pending) >= every_rows or (self._pending and time.monotonic() - self._last_commit >= every_s):
            self.commit()

    def commit(self) -> None:
        """Write every queued result (one transaction, one Arrow batch: ~1 µs a row)."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        import pyarrow as pa

        batch = pa.table({name: pa.array([r[i] for r in rows], kind) for i, (name, kind) in enumerate(_arrow_types())})
        self.db.register("new_rows", batch)
        try:
            self.db.execute(f"INSERT OR IGNORE INTO llm_cache ({', '.join(COLUMNS)}) SELECT * FROM new_rows")
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


def prune(db: Any, older_than_days: float | None = None, model: str | None = None) -> int:
    """Delete cached rows older than N days and/or of one model (identity hash prefix); returns the count."""
    db.execute(SCHEMA)
    clauses, params = [], []
    if older_than_days is not None:
        clauses.append("created_at < now() - to_seconds(?)")
        params.append(older_than_days * 86400)
    if model:
        clauses.append("starts_with(model, ?)")
        params.append(model)
    where = " AND ".join(clauses) or "TRUE"
    count = db.execute(f"SELECT count(*) FROM llm_cache WHERE {where}", params).fetchall()[0][0]
    db.execute(f"DELETE FROM llm_cache WHERE {where}", params)
    return int(count)


def export(db: Any, path: str) -> int:
    """Write the whole cache to a Parquet file (to share or archive); returns the row count."""
    db.execute(SCHEMA)
    db.execute(f"COPY llm_cache TO '{_quote(path)}' (FORMAT parquet)")
    return int(db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0])


def import_rows(db: Any, path: str) -> int:
    """Merge a cache exported with `export` (existing keys are kept); returns the rows added."""
    db.execute(SCHEMA)
    before = db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0]
    db.execute(f"INSERT OR IGNORE INTO llm_cache SELECT * FROM read_parquet('{_quote(path)}')")
    return int(db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0] - before)


def _quote(path: str) -> str:
    return path.replace("'", "''")
