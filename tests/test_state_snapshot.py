"""The state snapshot that spares a no-op check the DuckDB start-up, and the executable's quick exit."""

from __future__ import annotations

import subprocess
import sys

import duckdb

from dreammake.state import State

DREAMFILE = """
def double(input):
    return {"x": [v * 2 for v in input["x"]]}

rule("a", input="src/s.parquet", output="out/a.parquet", run=double)
rule("b", input="out/a.parquet", output="out/b.parquet", run=double)
"""


def built(project):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (project.root / "src").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), project.root / "src/s.parquet")
    project.dreamfile(DREAMFILE)
    project.run()
    return project.root


def test_no_op_check_reads_the_snapshot_not_duckdb(project):
    root = built(project)
    assert (root / ".dreammake/snapshot.marshal").exists()
    state = State(root)
    try:
        assert set(state.targets()) == {"out/a.parquet", "out/b.parquet"}
        assert "src/s.parquet" in state.file_hashes()
        assert state._db is None  # nothing opened the database
    finally:
        state.close()
    assert project.plan() == {}


def test_snapshot_is_gone_while_the_database_is_open(project):
    """A run killed after it opened the database leaves no snapshot, so the next run reads DuckDB."""
    root = built(project)
    state = State(root)
    state.db.execute("DELETE FROM targets WHERE path = 'out/b.parquet'")
    assert not (root / ".dreammake/snapshot.marshal").exists()
    state.db.close()  # the process dies here: no State.close(), no new snapshot
    state.lock.release()
    state = State(root)
    try:
        assert "out/b.parquet" not in state.targets()  # read from DuckDB, not from a stale snapshot
    finally:
        state.close()
    assert project.plan() == {}  # the file itself says which build wrote it: adopted, not rebuilt


def test_snapshot_ignored_when_the_database_changed_behind_it(project):
    root = built(project)
    db = duckdb.connect(str(root / ".dreammake/state.duckdb"))  # e.g. a user's own SQL, or a restored copy
    db.execute("UPDATE targets SET fingerprint = 'edited' WHERE path = 'out/a.parquet'")
    db.close()
    assert (root / ".dreammake/snapshot.marshal").exists()
    state = State(root)
    try:
        assert state.targets()["out/a.parquet"][0] == "edited"
    finally:
        state.close()
    assert project.plan() == {}  # the file's own metadata names the planned fingerprint: adopted


def test_snapshot_follows_builds_and_hash_cache_updates(project):
    root = built(project)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [5]}), root / "src/s.parquet")
    assert project.plan() == {"a": "input", "b": "input"}
    project.run()
    assert project.plan() == {}
    assert project.read("out/b.parquet") == [{"x": 20}]
    (root / "src/s.parquet").touch()  # same content, new signature: re-hashed, cached by a build, not by -n
    assert project.plan() == {}
    state = State(root)
    try:
        assert state.file_hashes()["src/s.parquet"][0][1] != (root / "src/s.parquet").stat().st_mtime_ns
    finally:
        state.close()
    assert "up to date" in project.run()
    state = State(root)
    try:
        assert state.file_hashes()["src/s.parquet"][0][1] == (root / "src/s.parquet").stat().st_mtime_ns
        assert state._db is None
    finally:
        state.close()


def test_executable_exit_codes_and_output_after_quick_exit(project):
    root = built(project)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=root, capture_output=True, text=True)

    assert run("-q").returncode == 0
    plan = run("-n")
    assert plan.returncode == 0 and plan.stdout.strip().endswith("0 job(s) to run, 2 up to date")
    build = run()
    assert build.returncode == 0 and "everything is up to date" in build.stdout + build.stderr
    project.dreamfile(DREAMFILE.replace("v * 2", "v * 3"))
    assert run("-q").returncode == 1
    plan = run("-n")
    assert plan.returncode == 0 and "a\tout/a.parquet\tcode: code changed" in plan.stdout
    assert run("-q", "nothing.parquet").returncode == 2


def test_plans_and_checks_write_nothing(project):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = built(project)
    db = root / ".dreammake/state.duckdb"
    before = db.stat().st_mtime_ns
    pq.write_table(pa.table({"x": [9]}), root / "src/s.parquet")
    assert project.plan() == {"a": "input", "b": "input"}
    project.run("-q", code=1)
    project.run("status")
    assert db.stat().st_mtime_ns == before
    assert (root / ".dreammake/snapshot.marshal").exists()
