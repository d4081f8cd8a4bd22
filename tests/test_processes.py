"""Behaviour across processes: SIGKILL mid-write, the project lock, parallel jobs."""

from __future__ import annotations

import json
import os
import signal
import time

SLOW = """
import os, time

def first():
    return [{"x": 1}]

def slow_writer(input, output):
    with open(output, "wb") as f:
        f.write(b"partial data" * 1000)
        f.flush()
        open("started.flag", "w").close()
        time.sleep(60)

rule("first", output="t/first.parquet", run=first)
rule("slow", input="t/first.parquet", output="t/slow.bin", run=slow_writer)
"""


def wait_for(path, timeout=60.0):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_mid_write_leaves_no_partial_target_and_keeps_finished(project):
    project.dreamfile(SLOW)
    proc = project.spawn("t/slow.bin")
    wait_for(project.root / "started.flag")
    time.sleep(1.2)  # let the coordinator commit the finished job
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (project.root / "t/slow.bin").exists(), "a killed job must not leave its target"
    # the database opens cleanly and remembers the finished job
    assert project.plan("t/slow.bin") == {"slow": "missing"}
    # a rerun removes the stale temp file
    project.dreamfile(SLOW.replace("time.sleep(60)", "pass"))
    project.run("t/slow.bin")
    assert (project.root / "t/slow.bin").read_bytes().startswith(b"partial data")
    leftovers = [p for p in os.listdir(project.root / "t") if ".dmtmp-" in p]
    assert leftovers == []


def test_second_run_waits_or_exits_with_no_wait(project):
    project.dreamfile("""
    import time
    def slow():
        time.sleep(3)
        return [{"x": 1}]
    rule("slow", output="t/slow.parquet", run=slow)
    """)
    first = project.spawn()
    deadline = time.time() + 30
    while not (project.root / ".dreammake/lock").exists() or not (project.root / ".dreammake/lock").read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    out = project.run("--no-wait", code=2)
    assert "another dreammake (pid" in out and "is running in this project" in out
    waiter = project.spawn()
    out_wait, _ = waiter.communicate(timeout=60)
    first.wait(timeout=60)
    assert first.returncode == 0
    assert waiter.returncode == 0
    assert "waiting for it to finish" in out_wait
    assert "up to date" in out_wait


def test_parallel_jobs_respect_resources(project):
    project.dreamfile("""
    import os, time, json

    def work(wildcards):
        mark = f"running/{wildcards['i']}"
        open(mark, "w").close()
        time.sleep(0.5)
        now = len(os.listdir("running"))
        os.remove(mark)
        return [{"concurrent": now}]

    rule("work", output="t/{i}.parquet", run=work, resources={"gpus": 1})
    rule("all", input=expand("t/{i}.parquet", i=range(6)))
    """)
    (project.root / "running").mkdir()
    project.run("-j", "4", "--resources", "gpus=2")
    seen = [project.read(f"t/{i}.parquet")[0]["concurrent"] for i in range(6)]
    assert max(seen) == 2, seen
    out = project.run("-j", "4", "-F", "--resources", "gpus=0", code=2)
    assert "needs gpus=1 but only 0 are available" in out


def test_status_json_in_subprocess(project):
    project.dreamfile("rule('a', output='t/a.parquet', run=lambda: [{'x': 1}])\n")
    proc = project.spawn()
    proc.wait(timeout=60)
    proc = project.spawn("status", "--json")
    out, _ = proc.communicate(timeout=60)
    data = json.loads(out)
    assert data["targets"][0]["state"] == "up-to-date"
