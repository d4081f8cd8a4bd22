"""The row-level LLM cache: its own DuckDB file, `.dreammake/cache.duckdb` (`llm_cache` table).

Key = xxh3-128 over (model identity, rendered messages, generation params, seed, sample
index). A prompt rule looks up all its keys in one query and sends only the misses to
the model. Every response is first appended to the job's spool (`.dreammake/spool/`, see
`dreammake.llm.spool`); the cache ingests spools when a generation commits and when the cache
opens, remembering how far it read each one (`spool_offsets`). So a killed run loses only the
requests in flight, and a damaged cache file is rebuilt from the spools (`rebuild`). Copying
`.dreammake/` shares every result.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import xxhash

from dreammake.dbfiles import damage_error, is_damage, set_aside
from dreammake.errors import DreamError
from dreammake.fingerprint import canonical
from dreammake.llm import spool

CACHE_FILE = "cache.duckdb"
SPOOL_DIR = "spool"
REBUILD_HINT = "run `dreammake cache rebuild` to rebuild it from the spools in .dreammake/spool/"
SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR, text VARCHAR, finish_reason VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp);
ALTER TABLE llm_cache ADD COLUMN IF NOT EXISTS served_model VARCHAR;
ALTER TABLE llm_cache ADD COLUMN IF NOT EXISTS system_fingerprint VARCHAR;
CREATE TABLE IF NOT EXISTS spool_offsets (file VARCHAR PRIMARY KEY, "offset" BIGINT);
"""
# served_model / system_fingerprint: what an API said served each answer (null before they were kept, and for
# local backends); added to older files by ALTER, so every file has them in this order.
COLUMNS = spool.FIELDS  # the llm_cache columns a spool record fills (created_at is the ingestion time)
COMMIT_EVERY_S = 5.0  # the spool already keeps every row; commits only bound what the next start ingests
_INGEST = threading.Lock()  # one ingestion at a time: concurrent INSERTs of the same keys would conflict


def _arrow_types() -> list[tuple[str, Any]]:
    import pyarrow as pa

    kinds = [pa.string()] * 4 + [pa.int32()] * 2 + [pa.float64()] * 2 + [pa.string()] * 2
    return list(zip(COLUMNS, kinds))


def _columns_of(db: Any, table: str) -> list[str]:
    """The COLUMNS a cache table has (an older file or state database lacks the provenance columns)."""
    present = {row[0] for row in db.execute(f"DESCRIBE {table}").fetchall()}
    return [c for c in COLUMNS if c in present]


def _to_arrow(relation: Any) -> Any:
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 renamed arrow()
    return to_arrow()


def open_cache(state_dir: Path, legacy: Any = None) -> Any:
    """Connect to the cache file (schema ensured), move in the rows of an old `llm_cache` table of the
    state database (`legacy`, a connection), and ingest every spool. A damaged file is a DreamError."""
    import duckdb

    path = state_dir / CACHE_FILE
    db = None
    try:
        db = duckdb.connect(str(path))
        db.execute(SCHEMA)
        if legacy is not None:
            _migrate(db, legacy)
        ingest_all(db, state_dir / SPOOL_DIR)
    except Exception as exc:
        if db is not None:
            db.close()  # or the process keeps the damaged database open under this path
        if is_damage(exc):
            raise damage_error(path, exc, REBUILD_HINT) from None
        raise
    return db


def _migrate(db: Any, legacy: Any) -> None:
    """Copy the rows of the state database's `llm_cache` table (older layout) here, then drop it there."""
    names = ", ".join(_columns_of(legacy, "llm_cache"))
    table = _to_arrow(legacy.sql(f"SELECT {names}, created_at FROM llm_cache"))
    db.register("legacy_rows", table)
    try:
        db.execute(f"INSERT OR IGNORE INTO llm_cache ({names}, created_at) SELECT * FROM legacy_rows")
    finally:
        db.unregister("legacy_rows")
    legacy.execute("DROP TABLE llm_cache")


def ingest(db: Any, path: str) -> int:
    """Add the spool's records written since the last ingestion (existing keys are kept); returns the count."""
    with _INGEST:
        offset = _offset(db, os.path.basename(path))
        try:
            if offset > os.path.getsize(path):
                offset = 0  # the spool was deleted and started again
            records, end = spool.read(path, offset)
        except FileNotFoundError:
            return 0
        if end != offset:
            _insert(db, [tuple(r.get(name) for name in COLUMNS) for r in records], path, end)
        return len(records)


def _offset(db: Any, name: str) -> int:
    row = db.execute('SELECT "offset" FROM spool_offsets WHERE file = ?', [name]).fetchall()
    return row[0][0] if row else 0


def _insert(db: Any, rows: list[tuple[Any, ...]], spool_path: str, end: int) -> None:
    """Insert rows (existing keys kept) and mark the spool ingested up to byte `end`, in one transaction."""
    import pyarrow as pa

    db.execute("BEGIN")
    try:
        if rows:
            kinds = enumerate(_arrow_types())
            batch = pa.table({name: pa.array([r[i] for r in rows], kind) for i, (name, kind) in kinds})
            db.register("new_rows", batch)
            try:
                db.execute(f"INSERT OR IGNORE INTO llm_cache ({', '.join(COLUMNS)}) SELECT * FROM new_rows")
            finally:
                db.unregister("new_rows")
        db.execute("INSERT OR REPLACE INTO spool_offsets VALUES (?, ?)", [os.path.basename(spool_path), end])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def ingest_all(db: Any, folder: Path) -> int:
    """Ingest every spool in `folder`; returns the records added."""
    return sum(ingest(db, path) for path in spool.files(str(folder)))


def rebuild(state_dir: Path) -> tuple[int, int, str | None]:
    """A fresh cache file from the spools, plus the rows of the old file that can still be read (it is kept
    as `cache.duckdb.damaged`). Returns (rows from spools, further rows salvaged, where the old file went)."""
    import duckdb

    path = state_dir / CACHE_FILE
    kept = set_aside(path)
    db = duckdb.connect(str(path))
    try:
        db.execute(SCHEMA)
        from_spools = ingest_all(db, state_dir / SPOOL_DIR)
        return from_spools, _salvage(db, kept) if kept else 0, kept
    finally:
        db.close()


def _salvage(db: Any, old: str) -> int:
    """Copy the readable rows of an old cache file (none when it cannot be read at all)."""
    before = db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0]
    try:
        db.execute(f"ATTACH '{_quote(old)}' AS old (READ_ONLY)")
    except Exception as exc:
        if is_damage(exc) or type(exc).__name__ == "BinderException":
            return 0
        raise
    try:
        names = ", ".join(_columns_of(db, "old.llm_cache"))
        db.execute(f"INSERT OR IGNORE INTO llm_cache ({names}, created_at)"
                   f" SELECT {names}, created_at FROM old.llm_cache")
    except Exception as exc:
        if not is_damage(exc) and type(exc).__name__ != "CatalogException":
            raise
    finally:
        db.execute("DETACH old")
    return int(db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0] - before)


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
    """Reads cached generations and spools new ones for one job, through its own cursor (one per job thread).

    It is its spool file's only writer: a commit inserts the rows it spooled (kept in memory, not
    read back) and marks the file ingested up to its end."""

    def __init__(self, db: Any, spool_path: str):
        self.db = db.cursor()
        self.spool_path = spool_path
        self._spool = spool.SpoolWriter(spool_path)
        self._pending: list[tuple[Any, ...]] = []
        self._offsets: dict[str, int] = {}  # other spools this job follows (its workers'): how far they were read
        self._lock = threading.Lock()
        self._last_commit = time.monotonic()
        self._guard(lambda: ingest(self.db, spool_path))  # rows an earlier process spooled but never committed

    def lookup(self, keys: Sequence[str]) -> Any:
        """The cached text of every key, in order, as an Arrow table (text, finish_reason, served_model,
        system_fingerprint); nulls in text are misses.

        Keys go in as one list parameter: registering an Arrow table would make DuckDB import
        pandas (~0.6 s) on first use."""
        query = ("SELECT c.text, c.finish_reason, c.served_model, c.system_fingerprint FROM (SELECT unnest($keys) AS"
                 " key, generate_subscripts($keys, 1) AS i) w LEFT JOIN llm_cache c ON c.key = w.key ORDER BY w.i")
        return self._guard(lambda: _to_arrow(self.db.sql(query, params={"keys": list(keys)})))

    def add(self, key: str, model: str, response: Any) -> None:
        """Append one result to the spool at once; it enters the cache with the next commit."""
        row = (key, model, response.text, response.finish_reason, response.prompt_tokens,
               response.completion_tokens, response.cost_usd, response.latency_s, response.served_model,
               response.system_fingerprint)
        with self._lock:
            self._spool.append(dict(zip(COLUMNS, row)))
            self._pending.append(row)

    def absorb(self, path: str) -> list[dict[str, Any]]:
        """Ingest what a worker appended to spool `path` since the last call (one transaction); returns those
        records. The first call starts where the cache's last ingestion of that file ended."""
        name = os.path.basename(path)
        offset = self._offsets.get(path)
        if offset is None:
            offset = self._guard(lambda: _offset(self.db, name))
        try:
            if offset > os.path.getsize(path):
                offset = 0  # the spool was deleted and started again
            records, end = spool.read(path, offset)
        except FileNotFoundError:
            return []
        if end != offset:
            rows = [tuple(r.get(column) for column in COLUMNS) for r in records]
            with _INGEST:
                self._guard(lambda: _insert(self.db, rows, path, end))
        self._offsets[path] = end
        return records

    def commit_if_due(self, every_s: float = COMMIT_EVERY_S) -> None:
        """Commit now and then (a DuckDB commit costs tens of ms; the spool already holds every row)."""
        if self._pending and time.monotonic() - self._last_commit >= every_s:
            self.commit()

    def commit(self) -> None:
        """Write the rows spooled since the last commit (one transaction, one Arrow batch: ~1 µs a row)."""
        with self._lock:
            rows, self._pending = self._pending, []
            end = self._spool.end
        if rows:
            with _INGEST:
                self._guard(lambda: _insert(self.db, rows, self.spool_path, end))
        self._last_commit = time.monotonic()

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """fn(), with an error from a damaged cache file turned into a DreamError naming the recovery."""
        try:
            return fn()
        except Exception as exc:
            if is_damage(exc):
                reason = " ".join(str(exc).split())[:160]
                raise DreamError(f"the row cache cannot be read or written ({reason}); responses are kept in"
                                 f" {os.path.relpath(self.spool_path)}", hint=REBUILD_HINT) from None
            raise

    def close(self) -> None:
        """Commit what is left and release the spool and the cursor."""
        try:
            self.commit()
        finally:
            self._spool.close()
            self.db.close()


def stats(db: Any) -> dict[str, Any]:
    """Totals for `dreammake cache stats`."""
    rows = db.execute("SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd)"
                      " FROM llm_cache GROUP BY model ORDER BY 2 DESC").fetchall()
    return {"entries": sum(r[1] for r in rows),
            "models": [{"model": r[0], "entries": r[1], "prompt_tokens": r[2] or 0, "completion_tokens": r[3] or 0,
                        "cost_usd": r[4] or 0.0} for r in rows]}


def prune(db: Any, older_than_days: float | None = None, model: str | None = None) -> int:
    """Delete cached rows older than N days and/or of one model (identity hash prefix); returns the count."""
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
    db.execute(f"COPY llm_cache TO '{_quote(path)}' (FORMAT parquet)")
    return int(db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0])


def import_rows(db: Any, path: str) -> int:
    """Merge a cache exported with `export` (existing keys are kept); returns the rows added."""
    before = db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0]
    db.execute(f"INSERT OR IGNORE INTO llm_cache BY NAME SELECT * FROM read_parquet('{_quote(path)}')")
    return int(db.execute("SELECT count(*) FROM llm_cache").fetchall()[0][0] - before)


def _quote(path: str) -> str:
    return path.replace("'", "''")
