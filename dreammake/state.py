"""The project's state in DuckDB (`.dreammake/state.duckdb`), and the lock around it.

Tables: `targets` (one row per built output: fingerprint and its components, content
hash, size, rows, timings), `files` (the stat-signature → content-hash cache), `runs`.
Only the coordinating `dreammake` process opens the database; a second process waits
on `.dreammake/lock` (or exits 2 with `--no-wait`). DuckDB's write-ahead log keeps the
file consistent when a run is killed. A snapshot of the two tables a no-op check reads
(`.dreammake/snapshot.marshal`) spares such checks the database start-up. The LLM row
cache is a separate file (`dreammake.llm.cache`), opened only when a rule or command needs
it. A damaged state file is one clear error naming `dreammake state rebuild`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import marshal
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dreammake.content import Signature
from dreammake.content import signature as stat_signature
from dreammake.dbfiles import damage_error, is_damage, set_aside
from dreammake.errors import DreamError

STATE_DIR = ".dreammake"
STATE_FILE = "state.duckdb"
SCHEMA_VERSION = "1"
REBUILD_HINT = "run `dreammake state rebuild` to make a fresh state that adopts the existing targets (the row" \
               " cache is kept)"
# DuckDB errors that mean the file itself is unreadable (truncated, overwritten, not a database)
_SCHEMA = """
DROP TABLE IF EXISTS meta;  -- created by earlier versions, never used
CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, sig VARCHAR, hash VARCHAR);
CREATE TABLE IF NOT EXISTS targets (
    path VARCHAR PRIMARY KEY, rule VARCHAR, fingerprint VARCHAR,
    kind_hash VARCHAR, code_hash VARCHAR, params_hash VARCHAR, model_hash VARCHAR, inputs_hash VARCHAR,
    content_hash VARCHAR, data_hash VARCHAR, size BIGINT, rows BIGINT,
    built_at TIMESTAMP, duration_s DOUBLE, run_id BIGINT, stats VARCHAR);
CREATE SEQUENCE IF NOT EXISTS run_ids START 1;
CREATE TABLE IF NOT EXISTS runs (
    id BIGINT PRIMARY KEY, started_at TIMESTAMP, finished_at TIMESTAMP, command VARCHAR,
    status VARCHAR, jobs_run INTEGER, jobs_failed INTEGER);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS failed_job VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS error VARCHAR;
"""

TARGET_COLUMNS = (
    "path", "rule", "fingerprint", "kind_hash", "code_hash", "params_hash", "model_hash", "inputs_hash",
    "content_hash", "data_hash", "size", "rows", "built_at", "duration_s", "run_id", "stats",
)


FileHashes = dict[str, tuple[Signature, str]]  # path -> (signature when hashed, content hash)


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Turn an error from a damaged state file, in any State method that reads or writes it, into a DreamError."""

    @functools.wraps(method)
    def wrapper(self: State, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if is_damage(exc):
                self._drop_connection()
                raise damage_error(self.dir / STATE_FILE, exc, REBUILD_HINT) from None
            raise

    return wrapper  # type: ignore[return-value]


def _parse_signature(text: str) -> Signature:
    size, mtime_ns, inode = text.split(":")
    return int(size), int(mtime_ns), int(inode)


def _pack_params(components: dict[str, str]) -> str:
    """The `params_hash` column: the params hash, then (after a space) the per-key hashes as JSON."""
    keys = {k: v for k, v in components.items() if k.startswith("params.")}
    return components["params"] + (" " + json.dumps(keys, sort_keys=True) if keys else "")


def _unpack_components(row: Sequence[str]) -> dict[str, str]:
    """The components dict of a (kind, code, params, model, inputs) row of hashes (see `_pack_params`)."""
    components = dict(zip(("kind", "code", "params", "model", "inputs"), row))
    params, _, keys = components["params"].partition(" ")
    components["params"] = params
    return {**components, **json.loads(keys)} if keys else components


@dataclass(frozen=True)
class TargetRecord:
    """What the state remembers about one built output."""

    path: str
    rule: str
    fingerprint: str
    components: dict[str, str]
    content_hash: str
    data_hash: str | None
    size: int
    rows: int | None
    built_at: Any = None
    duration_s: float | None = None
    run_id: int | None = None
    stats: dict[str, Any] | None = None


class ProjectLock:
    """An exclusive advisory lock on `.dreammake/lock`, released by the OS if the process dies."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def acquire(self, wait: bool, on_wait: Any = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            if not wait:
                os.close(fd)
                raise DreamError(f"another dreammake (pid {holder}) is running in this project",
                                 hint="wait for it, or run without --no-wait to queue") from None
            if on_wait:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class Snapshot:
    """A marshal copy of the `files` and `targets` tables, for start-up without DuckDB.

    Written when a process that opened the database closes it, and deleted the moment a
    process opens the database, so it exists only while it equals the tables. It also
    records the database file's stat signature and is ignored when that differs or a
    write-ahead log is present (someone else touched the database).
    """

    FORMAT = 2

    def __init__(self, state_dir: Path):
        self.path = state_dir / "snapshot.marshal"
        self.db_path = state_dir / STATE_FILE

    def _db_signature(self) -> Signature | None:
        if os.path.exists(str(self.db_path) + ".wal"):
            return None
        try:
            return stat_signature(os.stat(self.db_path))
        except FileNotFoundError:
            return None

    def read(self) -> tuple[FileHashes, dict[str, tuple[str, str, str | None]]] | None:
        """(files, targets) when the snapshot is current, else None."""
        try:
            with open(self.path, "rb") as f:
                data = marshal.loads(f.read())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        signature = self._db_signature()
        if not (isinstance(data, tuple) and len(data) == 4 and data[0] == (self.FORMAT, SCHEMA_VERSION)
                and signature is not None and data[1] == signature):
            return None
        return data[2], data[3]

    def write(self, files: FileHashes, targets: dict[str, tuple[str, str, str | None]]) -> None:
        """Save the tables' rows (call after the database is closed)."""
        signature = self._db_signature()
        if signature is None:
            return
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(marshal.dumps(((self.FORMAT, SCHEMA_VERSION), signature, files, targets)))
        os.replace(tmp, self.path)

    def discard(self) -> None:
        """Delete the snapshot (the database is about to be opened, and may change)."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


class State:
    """Reads and writes the project's DuckDB state. One instance per coordinating process.

    The database opens on first use. What a no-op check needs (the hash cache and the
    target records) comes from a snapshot of those two tables when it is current (see
    `Snapshot`), so `dreammake -n` on an up-to-date project never starts DuckDB.
    """

    def __init__(self, root: Path, wait: bool = True, on_wait: Any = None, read_only: bool = False):
        self.root = root
        self.read_only = read_only  # a plan or check: hashes learned now are not kept for later runs
        self.dir = root / STATE_DIR
        self.lock = ProjectLock(self.dir)
        self.lock.acquire(wait, on_wait)
        self.snapshot = Snapshot(self.dir)
        self._db: Any = None
        self._cache_db: Any = None
        self._connect_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._files: FileHashes | None = None
        self._targets: dict[str, tuple[str, str, str | None]] | None = None
        self._components: dict[str, dict[str, str]] | None = None
        self._dirty_files: FileHashes = {}
        self._files_lock = threading.Lock()
        self._snapshot_data = self.snapshot.read()

    @property
    def db(self) -> Any:
        """The DuckDB connection, opened (and the schema ensured) on first use."""
        if self._db is None:
            with self._connect_lock:
                if self._db is None:
                    self._db = self._connect()
        return self._db

    @_guarded
    def _connect(self) -> Any:
        import duckdb

        self.snapshot.discard()  # from here on the database may change under the snapshot
        db = None
        try:
            db = duckdb.connect(str(self.dir / STATE_FILE))
            db.execute(_SCHEMA)
        except duckdb.Error as exc:
            if db is not None:
                db.close()  # or the process keeps the damaged database open under this path
            if is_damage(exc):
                raise
            raise DreamError(f"cannot open {self.dir / STATE_FILE}: {exc}") from None
        return db

    def _drop_connection(self) -> None:
        """Close a connection to a damaged file (DuckDB would hand the same instance to the next connect)."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()

    @property
    def cache_db(self) -> Any:
        """The row cache's DuckDB connection (`.dreammake/cache.duckdb`), opened on first use: spools are
        ingested then, and rows of an older state file's `llm_cache` table moved in."""
        if self._cache_db is None:
            with self._cache_lock:
                if self._cache_db is None:
                    from dreammake.llm.cache import open_cache

                    legacy = self._legacy_cache()
                    try:
                        self._cache_db = open_cache(self.dir, legacy)
                    finally:
                        if legacy is not None:
                            legacy.close()
        return self._cache_db

    def _legacy_cache(self) -> Any:
        """A cursor on the state database when it still holds the row cache (the layout before cache.duckdb),
        else None. A damaged state never stops the cache from opening."""
        if not (self.dir / STATE_FILE).exists():
            return None
        try:
            cursor = self.db.cursor()  # (called from a job thread: never share the main thread's connection)
        except DreamError:
            return None
        found = cursor.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'llm_cache'").fetchall()
        if found[0][0]:
            return cursor
        cursor.close()
        return None

    def set_aside(self) -> str | None:
        """Move the state file away (to `state.duckdb.damaged`) before it is opened; returns where it went."""
        if self._db is not None:
            raise RuntimeError("the state database is already open")
        self.snapshot.discard()
        self._snapshot_data = None
        return set_aside(self.dir / STATE_FILE)

    @_guarded
    def close(self) -> None:
        """Flush pending hash-cache rows, close the databases, refresh the snapshot and release the lock."""
        try:
            if self._cache_db is not None:
                self._cache_db.close()
                self._cache_db = None
            self.flush_files()
            if self._db is not None:
                files, targets = self.file_hashes(), self.targets()
                self._db.close()
                self._db = None
                self.snapshot.write(files, targets)
        finally:
            self.lock.release()

    # -- the file-hash cache ----------------------------------------------------------------
    @_guarded
    def file_hashes(self) -> FileHashes:
        """path → (stat signature, content hash), loaded once."""
        if self._files is None:
            if self._snapshot_data is not None:
                self._files = self._snapshot_data[0]
            else:
                rows = self.db.execute("SELECT path, sig, hash FROM files").fetchall()
                self._files = {p: (_parse_signature(s), h) for p, s, h in rows}
        return self._files

    def remember_file(self, path: str, sig: Signature, content_hash: str) -> None:
        """Cache a file's hash under its stat signature (written on flush; not at all when read-only)."""
        if self.read_only:
            return
        entry = (sig, content_hash)
        files = self.file_hashes()
        if files.get(path) != entry:
            with self._files_lock:
                files[path] = entry
                self._dirty_files[path] = entry

    @_guarded
    def flush_files(self) -> None:
        """Write the hash-cache rows learned since the last flush."""
        with self._files_lock:
            rows = [(p, "{}:{}:{}".format(*s), h) for p, (s, h) in self._dirty_files.items()]
            self._dirty_files.clear()
        if rows:
            self._upsert("files", 3, rows)

    # -- targets ----------------------------------------------------------------------------
    @_guarded
    def targets(self) -> dict[str, tuple[str, str, str | None]]:
        """path → (fingerprint, content_hash, data_hash), loaded once (what a no-op check needs)."""
        if self._targets is None:
            if self._snapshot_data is not None:
                self._targets = self._snapshot_data[1]
            else:
                rows = self.db.execute("SELECT path, fingerprint, content_hash, data_hash FROM targets").fetchall()
                self._targets = {r[0]: r[1:] for r in rows}
        return self._targets

    @_guarded
    def components(self, path: str) -> dict[str, str]:
        """The recorded fingerprint components of an output (to say which part changed)."""
        if self._components is None:
            rows = self.db.execute("SELECT path, kind_hash, code_hash, params_hash, model_hash, inputs_hash"
                                   " FROM targets").fetchall()
            self._components = {r[0]: _unpack_components(r[1:]) for r in rows}
        return self._components.get(path, {})

    @_guarded
    def record_targets(self, records: Sequence[TargetRecord]) -> None:
        """Store finished outputs (one transaction, so a kill never leaves half a record)."""
        if not records:
            return
        rows = []
        for r in records:
            c = r.components
            rows.append((r.path, r.rule, r.fingerprint, c["kind"], c["code"], _pack_params(c), c["model"], c["inputs"],
                         r.content_hash, r.data_hash, r.size, r.rows, r.built_at, r.duration_s, r.run_id,
                         json.dumps(r.stats) if r.stats else None))
        targets = self.targets()
        self.db.execute("BEGIN")
        try:
            self._upsert("targets", len(TARGET_COLUMNS), rows)
            self.flush_files()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        for r in records:
            targets[r.path] = (r.fingerprint, r.content_hash, r.data_hash)
            if self._components is not None:
                self._components[r.path] = dict(r.components)

    @_guarded
    def forget_targets(self, paths: Iterable[str]) -> None:
        """Drop the records of removed outputs."""
        paths = list(paths)
        targets = self.targets()
        for i in range(0, len(paths), 500):
            chunk = paths[i : i + 500]
            self.db.execute(f"DELETE FROM targets WHERE path IN ({','.join('?' * len(chunk))})", chunk)
        for p in paths:
            targets.pop(p, None)

    @_guarded
    def target_details(self, paths: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Full records (rows, timings, stats) for status and cards."""
        cur = self.db.execute(f"SELECT {', '.join(TARGET_COLUMNS)} FROM targets")
        out = {}
        wanted = set(paths) if paths is not None else None
        for row in cur.fetchall():
            if wanted is None or row[0] in wanted:
                rec = dict(zip(TARGET_COLUMNS, row))
                rec["stats"] = json.loads(rec["stats"]) if rec["stats"] else {}
                out[row[0]] = rec
        return out

    # -- runs -------------------------------------------------------------------------------
    @_guarded
    def start_run(self, command: str) -> int:
        """Open a run record and return its id."""
        run_id = self.db.execute("SELECT nextval('run_ids')").fetchall()[0][0]
        self.db.execute("INSERT INTO runs (id, started_at, command, status, jobs_run, jobs_failed)"
                        " VALUES (?, now(), ?, 'running', 0, 0)", [run_id, command])
        return int(run_id)

    @_guarded
    def runs(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` run records, newest first."""
        cur = self.db.execute("SELECT id, started_at, finished_at, command, status, jobs_run, jobs_failed,"
                              " failed_job, error FROM runs ORDER BY id DESC LIMIT ?", [limit])
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    @_guarded
    def finish_run(self, run_id: int, status: str, jobs_run: int, jobs_failed: int,
                   failure: tuple[str, str] | None = None) -> None:
        """Close a run record; `failure` is the first failed job's name and its one-line error."""
        failed_job, error = failure or (None, None)
        self.db.execute("UPDATE runs SET finished_at = now(), status = ?, jobs_run = ?, jobs_failed = ?,"
                        " failed_job = ?, error = ? WHERE id = ?",
                        [status, jobs_run, jobs_failed, failed_job, error, run_id])

    # -- helpers ----------------------------------------------------------------------------
    def _upsert(self, table: str, width: int, rows: list[tuple[Any, ...]]) -> None:
        # DuckDB's executemany costs milliseconds a row; one multi-row VALUES statement per chunk does not.
        one = "(" + ",".join("?" * width) + ")"
        for i in range(0, len(rows), 1000):
            chunk = rows[i : i + 1000]
            params = [value for row in chunk for value in row]
            self.db.execute(f"INSERT OR REPLACE INTO {table} VALUES {','.join([one] * len(chunk))}", params)
