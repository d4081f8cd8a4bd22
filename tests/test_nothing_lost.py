"""Nothing paid for is lost, nothing hangs, nothing leaks: kills, damaged state and cache files,
servers that never answer, credentials on the command line."""

from __future__ import annotations

import os
import random
import signal
import socket
import time

import pytest
from fakes import calls

from dreammake.llm import spool

HEADER = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
"""

PROMPTS = HEADER + """
echo = llm(EchoBackend(), temperature=0)
rule("questions", output="t/q.parquet", run=lambda: {"q": [f"question {i}" for i in range(20)]})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=echo, input_column="q",
     output_column="a"))
rule("lengths", input="t/a.parquet", output="t/n.parquet", run=lambda input: {"n": [len(a) for a in input["a"]]})
rule("all", input=["t/n.parquet"])
"""


def wait_until(condition, proc, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "timed out"
        time.sleep(0.002)


# -- the spool ----------------------------------------------------------------------------------

def test_spool_reads_complete_lines_and_tolerates_a_torn_one(tmp_path):
    path = str(tmp_path / "spool" / "job.jsonl")
    writer = spool.SpoolWriter(path)
    writer.append({"key": "a", "text": "first"})
    writer.append({"key": "b", "text": "line\nbreak"})
    writer.close()
    with open(path, "ab") as f:
        f.write(b'{"key": "c", "text": "cut sh')  # a kill in the middle of a write
    records, end = spool.read(path)
    assert [r["key"] for r in records] == ["a", "b"] and records[1]["text"] == "line\nbreak"
    writer = spool.SpoolWriter(path)  # the next run appends after ending the torn line
    writer.append({"key": "d", "text": "after"})
    writer.close()
    more, end2 = spool.read(path, end)
    assert [r["key"] for r in more] == ["d"] and end2 == os.path.getsize(path)
    assert spool.read(path, end2) == ([], end2)
    assert list(spool.files(str(tmp_path / "spool"))) == [path]


# -- kills --------------------------------------------------------------------------------------

CONCURRENCY = 64
ROWS = 1500


@pytest.mark.parametrize("trial", range(5))
def test_sigkill_at_concurrency_64_resends_at_most_the_requests_in_flight(project, fault_server, trial):
    fault_server.latency = 0.005
    prefix = f"trial {trial} row"
    project.dreamfile(f"""
api = llm("openai/test-model", api_base={fault_server.api_base!r}, concurrency={CONCURRENCY})
rule("questions", output="t/q.parquet", run=lambda: {{"q": [f"{prefix} {{i}}" for i in range({ROWS})]}})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
""")
    proc = project.spawn()
    kill_after = random.Random(trial).randint(50, ROWS - 300)
    wait_until(lambda: sum(fault_server.answered.values()) >= kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = sum(fault_server.answered.values())
    assert killed_at < ROWS, "the run finished before the kill"
    project.run()
    twice = sum(n - 1 for n in fault_server.attempts.values() if n > 1)
    print(f"trial {trial}: killed after {killed_at} answers, {twice} request(s) sent twice")
    assert twice <= CONCURRENCY, (killed_at, twice)
    assert project.read("t/a.parquet") == [{"q": f"{prefix} {i}", "a": f"echo: {prefix} {i}"} for i in range(ROWS)]


QUICK_JOBS = """
def job(i):
    def make():
        with open("ran.log", "a") as f:
            f.write(f"{i}\\n")
        return {"i": [i]}
    return make

for i in range(300):
    rule(f"j{i}", output=f"t/{i}.parquet", run=job(i))
"""


def test_sigkill_among_300_quick_jobs_reruns_only_the_unfinished(project):
    project.dreamfile(QUICK_JOBS)
    log = project.root / "ran.log"
    proc = project.spawn()
    kill_after = random.randint(30, 250)
    wait_until(lambda: log.exists() and len(log.read_text().split()) >= kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {i for i in range(300) if (project.root / f"t/{i}.parquet").exists()}
    ran_before = len(log.read_text().split())
    assert 0 < len(finished) < 300
    project.run()
    rerun = {int(v) for v in log.read_text().split()[ran_before:]}
    print(f"killed with {len(finished)} of 300 targets in place; the rerun ran {len(rerun)} job(s)")
    assert rerun == set(range(300)) - finished
    assert project.plan() == {}


# -- damaged and deleted files ------------------------------------------------------------------

def damage(path, how: str) -> None:
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(300_000)
    elif how == "garbage":
        size = path.stat().st_size
        path.write_bytes(random.Random(0).randbytes(size))
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "garbage", "deleted"])
def test_damaged_state_is_one_line_and_state_rebuild_recovers_without_model_calls(project, how):
    project.dreamfile(PROMPTS)
    project.run()
    assert len(calls(project.root)) == 20
    damage(project.root / ".dreammake/state.duckdb", how)
    if how != "deleted":
        for command in (["-n"], ["all"], ["status"]):
            out = project.run(*command, code=2)
            lines = out.strip().splitlines()
            assert len(lines) == 1 and "state.duckdb is damaged" in lines[0], out
            assert "dreammake state rebuild" in lines[0]
    out = project.run("state", "rebuild")
    assert "3 target(s) adopted, 0 job(s) left" in out
    assert project.plan() == {}
    project.run()
    project.run("-F", "t/a.parquet")  # a rebuild of the prompt rule: served from the row cache
    assert len(calls(project.root)) == 20, "no model call after the recovery"


def test_damaged_cache_is_one_line_and_cache_rebuild_recovers_from_spools(project):
    project.dreamfile(PROMPTS)
    project.run()
    damage(project.root / ".dreammake/cache.duckdb", "garbage")
    out = project.run("-F", "t/a.parquet", code=2)
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cache.duckdb is damaged" in errors[0] and "dreammake cache rebuild" in errors[0]
    assert "Traceback" not in out
    assert "20 row(s) from spools" in project.run("cache", "rebuild")
    project.run("-F", "t/a.parquet")
    assert len(calls(project.root)) == 20


def test_a_row_cache_inside_an_old_state_file_moves_to_its_own_file(project):
    import duckdb

    project.dreamfile(PROMPTS)
    project.run()
    dot = project.root / ".dreammake"
    state = duckdb.connect(str(dot / "state.duckdb"))  # the layout before cache.duckdb existed
    state.execute(f"ATTACH '{dot / 'cache.duckdb'}' AS c")
    state.execute("CREATE TABLE llm_cache AS SELECT * FROM c.llm_cache")
    state.execute("DETACH c")
    state.close()
    (dot / "cache.duckdb").unlink()
    for path in spool.files(str(dot / "spool")):
        os.remove(path)
    project.run("-F", "t/a.parquet")
    assert len(calls(project.root)) == 20
    state = duckdb.connect(str(dot / "state.duckdb"))
    assert state.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'llm_cache'").fetchall() == [(0,)]
    state.close()


def test_adoption_checks_the_content_the_metadata_describes(project):
    import pyarrow.parquet as pq

    project.dreamfile("""
def model(output):
    import os
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "weights.bin"), "w") as f:
        f.write("w")

rule("table", output="t/x.parquet", run=lambda: {"x": [1, 2, 3]})
rule("model", output="m/model/", run=model)
""")
    project.run()
    (project.root / ".dreammake/state.duckdb").unlink()
    assert project.plan() == {}  # both are what their builds wrote
    (project.root / ".dreammake/state.duckdb").unlink()
    table = pq.read_table(project.root / "t/x.parquet")  # a hand edit that keeps the file's metadata
    pq.write_table(table.slice(0, 2).replace_schema_metadata(table.schema.metadata), project.root / "t/x.parquet")
    (project.root / "m/model/weights.bin").write_text("edited")
    assert project.plan() == {"table": "untracked", "model": "untracked"}


# -- servers that never answer ------------------------------------------------------------------

def test_a_server_that_never_answers_gives_a_waiting_line_then_a_clear_error(project):
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    try:
        project.dreamfile(f"""
api = llm("openai/test-model", api_base="http://127.0.0.1:{port}/v1", timeout=1, max_retries=1)
rule("questions", output="t/q.parquet", run=lambda: {{"q": ["a", "b", "c"]}})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
""")
        started = time.monotonic()
        out = project.run(code=2)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    waiting = next(i for i, line in enumerate(out.splitlines()) if "waiting on 3 request(s) to " + url in line)
    error = next(i for i, line in enumerate(out.splitlines()) if line.startswith("error:"))
    assert waiting < error
    assert f"no answer from {url} within 1 s" in out and "giving up after 1 retries" in out
    assert elapsed < 2 * 1 + 5, elapsed  # the timeout times the attempts, plus a short backoff


# -- credentials on the command line -----------------------------------------------------------

def test_a_config_credential_is_stored_nowhere(project, fault_server):
    secret = "sk-live-SECRET-987654321"
    base = fault_server.api_base.replace("http://", f"http://user:{secret}@")
    project.dreamfile("""
api = llm("openai/test-model", api_base=config["base"])
rule("questions", output="t/q.parquet", run=lambda: {"q": ["one", "two"]})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
""")
    proc = project.spawn("--config", f"base={base}")  # a real process: its command line is what gets stored
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    out += project.run("--config", f"base={base}", "status", "--json")
    out += project.run("--config", f"base={base}", "report", "-o", "report.html")
    assert fault_server.answered["one"] == 1  # the credentials did reach the server
    assert secret not in out
    leaks = []
    for folder, _, names in os.walk(project.root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                if secret.encode() in f.read():
                    leaks.append(os.path.relpath(os.path.join(folder, name), project.root))
    assert leaks == []
    assert b"base=http://***@127.0.0.1" in (project.root / "report.html").read_bytes()


@pytest.mark.parametrize(("line", "scrubbed"), [
    ("dreammake --config base=http://me:pa55word@host:8100/v1", "dreammake --config base=http://***@host:8100/v1"),
    ("dreammake --config api_key=abc123 --config n=5", "dreammake --config api_key=*** --config n=5"),
    ("dreammake --config password=hunter2", "dreammake --config password=***"),
    ("dreammake --token abc123 -j 4 t/x.parquet", "dreammake --token *** -j 4 t/x.parquet"),
    ("dreammake --config url=http://h/v1?secret=zzz&x=1", "dreammake --config url=http://h/v1?secret=***&x=1"),
    ("dreammake --config note=sk-abcdefgh12345", "dreammake --config note=***"),
    ("dreammake --config input_column=q -n", "dreammake --config input_column=q -n"),
])
def test_command_lines_are_scrubbed(line, scrubbed):
    from dreammake.cards.secrets import scrub_command

    assert scrub_command(line) == scrubbed
