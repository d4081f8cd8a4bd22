"""Sharded generation with the local executor: a prompt rule's misses go to N worker processes.

The output does not depend on N; a killed worker costs only its unanswered rows (the rerun sends only those);
jobs given GPUs see only theirs (`CUDA_VISIBLE_DEVICES`, a fake GPU count through `--resources gpus=N`).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from fakes import local_calls

HEADER = f"""
import os, pathlib, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import LocalEcho
"""


def workflow(shards: int, rows: int = 12, delay: float = 0.0, resources: str = "{}", reply: str = "None") -> str:
    return HEADER + f"""
def words():
    return {{"word": [f"w{{i}}" for i in range({rows})]}}

m = llm(LocalEcho(delay={delay}, reply={reply}))
rule("words", output="t/words.parquet", run=words)
rule("echo", input="t/words.parquet", output="t/echo.parquet", shards={shards}, resources={resources},
     run=rules.process_with_prompt(llm=m, instruction="Echo.", input_column="word", output_column="echo"))
"""


def spawn_until_calls(project, calls: int):
    """Start building t/echo.parquet in another process; return it once the model was called `calls` times."""
    proc = project.spawn("t/echo.parquet")
    deadline = time.monotonic() + 60
    while len(local_calls(project.root)) < calls:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    return proc


def test_two_shards_give_the_output_of_one(project, tmp_path):
    project.dreamfile(workflow(shards=2))
    out = project.run("t/echo.parquet")
    assert "generation" not in out or "error" not in out
    sharded = project.read("t/echo.parquet")
    calls = local_calls(project.root)
    assert sorted(c[2] for c in calls) == sorted(f"w{i}" for i in range(12))  # every row once
    pids = {c[0] for c in calls}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two workers, not this process
    assert not list((project.root / ".dreammake" / "remote").glob("*/batch-*"))  # batches removed at the end

    single = type(project)(tmp_path / "single")
    single.root.mkdir()
    single.dreamfile(workflow(shards=1))
    single.run("t/echo.parquet")
    assert single.read("t/echo.parquet") == sharded
    assert {c[0] for c in local_calls(single.root)} == {str(os.getpid())}  # one shard: in this process

    project.dreamfile(workflow(shards=3))  # the shard count is no part of the identity
    assert "up to date" in project.run("t/echo.parquet") or project.plan() == {}


def test_gpu_jobs_see_only_their_gpus(project):
    project.dreamfile(HEADER + """
import time

def hold(output, gpus):
    time.sleep(1.0)  # both jobs hold their GPU at the same time
    pathlib.Path(output).write_text(",".join(gpus) + "|" + os.environ.get("CUDA_VISIBLE_DEVICES", "-"))

def words():
    return {"word": [f"w{i}" for i in range(8)]}

m = llm(LocalEcho(reply=lambda t: os.environ.get("CUDA_VISIBLE_DEVICES", "-")))
rule("a", output="t/a.txt", run=hold, resources={"gpus": 1})
rule("b", output="t/b.txt", run=hold, resources={"gpus": 1})
rule("words", output="t/words.parquet", run=words)
rule("echo", input="t/words.parquet", output="t/echo.parquet", resources={"gpus": 1, "shards": 2},
     run=rules.process_with_prompt(llm=m, instruction="Where?", input_column="word", output_column="cuda"))
rule("all", input=["t/a.txt", "t/b.txt", "t/echo.parquet"])
""")
    project.run("-j", "3", "--resources", "gpus=2", "t/a.txt", "t/b.txt")
    given = {(project.root / f"t/{n}.txt").read_text().split("|")[0] for n in "ab"}
    assert given == {"0", "1"}  # two concurrent 1-GPU jobs, two different GPUs
    project.run("--resources", "gpus=2", "t/echo.parquet")
    seen = {row["cuda"] for row in project.read("t/echo.parquet")}
    assert seen == {"0", "1"}  # one replica per GPU: each worker saw only its own
    assert {c[1] for c in local_calls(project.root)} == {"0", "1"}


def test_a_killed_worker_costs_only_its_unanswered_rows(project):
    project.dreamfile(workflow(shards=2, rows=40, delay=0.1))
    proc = spawn_until_calls(project, 8)
    calls = local_calls(project.root)
    assert len({c[0] for c in calls}) == 2, calls
    victim = calls[-1][0]
    os.kill(int(victim), signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "Dreamfile:" in out and "generation worker shard" in out, out
    assert "unanswered" in out and "killed by SIGKILL" in out, out
    first = local_calls(project.root)
    answered = {c[2] for c in first}
    assert 8 <= len(answered) < 40

    (project.root / "local-calls.log").unlink()
    project.run("t/echo.parquet")
    again = [c[2] for c in local_calls(project.root)]
    assert sorted(again) == sorted({f"w{i}" for i in range(40)} - answered)  # only the missing rows
    rows = project.read("t/echo.parquet")
    assert [r["echo"] for r in rows] == [f"w{i}"[::-1] for i in range(40)]


@pytest.mark.parametrize("shards", ["0", "1.5", "'two'"])
def test_bad_shard_counts_are_one_line(project, shards):
    project.dreamfile(workflow(shards=1).replace("shards=1", f"shards={shards}"))
    out = project.run("-n", code=2)
    assert "shards must be a whole number" in out and "Dreamfile:" in out


def test_shards_on_a_function_rule_is_one_line(project):
    project.dreamfile("""
def f(output):
    open(output, "w").write("x")
rule("f", output="f.txt", run=f, shards=2)
""")
    out = project.run("-n", code=2)
    assert "shards= splits a prompt rule's generation" in out and "Dreamfile:4" in out


SMOL = """
def prompts():
    return {"topic": ["rain", "tea", "maps", "owls", "jazz", "salt", "kites", "moss"]}

tiny = llm("smollm2-135m-instruct", max_tokens=8, temperature=0.0, batch_size=2)
rule("topics", output="t/topics.parquet", run=prompts)
rule("lines", input="t/topics.parquet", output="t/lines.parquet", shards=SHARDS,
     run=rules.process_with_prompt(llm=tiny, instruction="Write one short line about:", input_column="topic",
                                   output_column="line"))
"""


def test_real_model_two_shards_equal_one(project, tmp_path, smol_checkpoint):
    project.dreamfile(SMOL.replace("SHARDS", "2"))
    project.run("t/lines.parquet")
    sharded = project.read("t/lines.parquet")
    spools = sorted((project.root / ".dreammake" / "spool").glob("lines-*.shard*.jsonl"))
    assert len(spools) == 2 and all(len(p.read_text().splitlines()) == 4 for p in spools)  # 4 rows each

    single = type(project)(tmp_path / "single")
    single.root.mkdir()
    single.dreamfile(SMOL.replace("SHARDS", "1"))
    single.run("t/lines.parquet")
    assert single.read("t/lines.parquet") == sharded
    assert all(row["line"] for row in sharded)


def test_ctrl_c_stops_the_workers_and_keeps_their_answers(project):
    project.dreamfile(workflow(shards=2, rows=60, delay=0.1))
    proc = spawn_until_calls(project, 6)
    workers = {int(c[0]) for c in local_calls(project.root)}
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a generation worker outlived its run"
        time.sleep(0.1)
    answered = len(local_calls(project.root))
    (project.root / "local-calls.log").unlink()
    project.run("t/echo.parquet")
    assert len(local_calls(project.root)) <= 60 - answered + 2  # (at most the rows in flight are asked again)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_a_mistyped_rule_keyword_is_one_line_with_the_closest(project):
    project.dreamfile(workflow(shards=2).replace("shards=2", "shard=2"))
    out = project.run("-n", code=2)
    assert "rule() got an unknown option 'shard' (did you mean shards?)" in out and "Dreamfile:" in out
