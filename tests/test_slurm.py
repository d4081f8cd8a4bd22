"""The Slurm executor.

The worker/coordinator split and the sbatch options are tested everywhere. The tests marked
`slurm` need a real Slurm: the main run deselects them (`-m "not slurm"` in pyproject), and
`.ci/slurm/test.sh` runs them after starting a single-node cluster (slurmctld + slurmd + munge).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import calls

from dreammake.slurm import needs_state, sbatch_options, split_args

RUN = ("--executor", "slurm", "--config", "slurm_poll_s=0.3")

HEADER = f"""
import os, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
"""

WORKFLOW = HEADER + """
def where():
    return {"slurm_job": os.environ.get("SLURM_JOB_ID", "")}

def words():
    return {"word": ["alpha", "beta", "gamma"]}

def shout(input, wildcards):
    return {"word": [w.upper() + wildcards["mark"] for w in input["word"]]}

def count(input):
    return [{"n": sum(len(t) for t in input), **where()}]

m = llm(EchoBackend(reply=lambda t: t.split()[-1][::-1]))
rule("words", output="t/words.parquet", run=words)
rule("shout", input="t/words.parquet", output="t/shout-{mark}.parquet", run=shout)
rule("echo", input="t/shout-!.parquet", output="t/echo.parquet",
     run=rules.process_with_prompt(llm=m, instruction="Echo.", input_column="word", output_column="echo"))
rule("count", input=["t/shout-!.parquet", "t/shout-?.parquet", "t/echo.parquet"], output="t/count.parquet",
     run=count)
rule("all", input=["t/count.parquet"])
"""


# -- without Slurm ---------------------------------------------------------------------------------
def test_sbatch_options_from_rule_resources():
    assert sbatch_options({}) == []
    assert sbatch_options({"gpus": 4, "cpus": 8, "mem": "32G", "time": "02:00:00", "partition": "gpu",
                           "account": "lab", "sbatch_args": "--qos=high --constraint='a100|h100'"}) == [
        "--gres=gpu:4", "--cpus-per-task=8", "--mem=32G", "--time=02:00:00", "--partition=gpu", "--account=lab",
        "--qos=high", "--constraint=a100|h100"]
    assert sbatch_options({"processes": 4, "gpus": 0}) == ["--cpus-per-task=4"]  # CPU training processes
    assert split_args(["--exclusive", 3]) == ["--exclusive", "3"]


def test_only_state_needing_actions_stay_in_the_coordinator():
    from fakes import EchoBackend

    from dreammake.llm.handle import llm
    from dreammake.rules.prompts import ProcessWithPrompt

    assert needs_state(ProcessWithPrompt(llm=llm(EchoBackend()), instruction="Hi.", input_column="x"))
    assert not needs_state(lambda input: input)
    from dreammake.actions import Action

    assert needs_state(type("Custom", (Action,), {"needs_state": True})())
    assert not needs_state(Action())
    assert not needs_state(type("Duck", (), {"needs_state": True})())  # only an Action answers the question


def _spec_for(project, rule: str, tmp_path: Path) -> tuple[dict, object, object, object]:
    """Plan `rule` in `project` and write the worker spec the Slurm executor would submit."""
    from dreammake.console import Console
    from dreammake.project import Options, Project
    from dreammake.runner import JobRunner
    from dreammake.slurm import job_spec

    os.chdir(project.root)
    p = Project(Options(), Console(quiet=True))
    planner = p.planner(p.graph([rule]))
    decision = next(d for d in planner.plan() if d.job.rule.name == rule)
    runner = JobRunner(planner, str(project.root), dreamfile=str(p.workflow.dreamfile))
    temps = runner.prepare(decision.job)
    return job_spec(runner, decision, temps, str(tmp_path / "result.json")), p, runner, decision


def test_worker_executes_without_the_state_db_and_coordinator_places(project, tmp_path, monkeypatch):
    import duckdb

    from dreammake.runner import JobOutput
    from dreammake.worker import main

    project.write("data.csv", "text\nhi\nyo\n")
    project.dreamfile("""
    import pyarrow.csv as pacsv
    def up(input):
        return {"text": [t.upper() for t in pacsv.read_csv(input)["text"].to_pylist()]}
    rule("up", input="data.csv", output="t/up.parquet", run=up)
    """)
    old = os.getcwd()
    try:
        spec, p, runner, decision = _spec_for(project, "up", tmp_path)
        (tmp_path / "spec.json").write_text(json.dumps(spec))

        def no_db(*args, **kwargs):
            raise AssertionError("the worker opened a database")

        monkeypatch.setattr(duckdb, "connect", no_db)
        assert main([str(tmp_path / "spec.json")]) == 0
        monkeypatch.undo()
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["ok"] and result["outputs"]["0"][0] == 2
        records = runner.place(decision, spec["temps"], JobOutput.from_json(result), None)
        p.state.record_targets(records)
        runner.release(spec["temps"])
        p.__exit__(None)
    finally:
        os.chdir(old)
    assert project.read("t/up.parquet") == [{"text": "HI"}, {"text": "YO"}]
    assert project.plan() == {}, "the placed output is recorded as up to date"


def test_worker_reports_errors_and_refuses_a_changed_rule(project, tmp_path):
    from dreammake.worker import main

    project.dreamfile("""
    def boom():
        raise ValueError("no luck")
    rule("boom", output="t/boom.parquet", run=boom)
    """)
    old = os.getcwd()
    try:
        spec, p, runner, _ = _spec_for(project, "boom", tmp_path)
        p.__exit__(None)
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        assert main([str(tmp_path / "spec.json")]) == 1
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["error"] == "rule 'boom' failed: ValueError: no luck"
        assert result["where"] == "Dreamfile:4" and "Traceback" in result["traceback"]
        project.dreamfile("""
        def boom():
            return [{"x": 1}]
        rule("boom", output="t/boom.parquet", run=boom)
        """)
        assert main([str(tmp_path / "spec.json")]) == 1
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["error"] == "rule 'boom' changed in the Dreamfile after the job was submitted"
        runner.release(spec["temps"])
    finally:
        os.chdir(old)


# -- with a real Slurm -----------------------------------------------------------------------------
def scontrol(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


@pytest.mark.slurm
def test_workflow_runs_through_sbatch_and_rerun_skips(project):
    project.dreamfile(WORKFLOW)
    assert set(project.plan()) == {"words", "shout[mark=!]", "shout[mark=?]", "echo", "count"}
    out = project.run(*RUN, "-j", "4")
    assert "5 job(s) run" in out, out
    assert out.count("submitted ") == 4, "every job but the prompt rule goes to Slurm"
    assert project.read("t/shout-!.parquet") == [{"word": "ALPHA!"}, {"word": "BETA!"}, {"word": "GAMMA!"}]
    assert [r["echo"] for r in project.read("t/echo.parquet")] == ["!AHPLA", "!ATEB", "!AMMAG"]
    assert len(calls(project.root)) == 3
    count = project.read("t/count.parquet")
    assert count[0]["n"] == 9 and count[0]["slurm_job"], "the action ran inside a Slurm job"
    assert "JobState=COMPLETED" in scontrol(count[0]["slurm_job"])
    status = {r["target"]: r for r in json.loads(project.run("status", "--json"))["targets"]}
    assert status["t/count.parquet"]["slurm_job_id"] == count[0]["slurm_job"]
    assert status["t/words.parquet"]["slurm_job_id"] not in ("", None, count[0]["slurm_job"])
    assert "slurm_job_id" not in status["t/echo.parquet"], "the prompt rule ran in the coordinator"
    logs = list((project.root / ".dreammake/slurm").glob("run-*/*.log"))
    assert len(logs) == 4
    assert not list((project.root / "t").glob(".*")), "no temp outputs are left"
    assert project.plan() == {}
    assert "up to date" in project.run(*RUN)
    # an upstream change that leaves the table equal: words reruns on Slurm, the rest is cut off
    project.dreamfile(WORKFLOW.replace('"beta", "gamma"]', '"beta", "gamma"][:3]'))
    out = project.run(*RUN, "-j", "4")
    assert "run words" in out and "unchanged shout[mark=!]" in out and "run count" not in out, out


@pytest.mark.slurm
def test_failed_job_reports_its_slurm_log_and_finished_jobs_are_kept(project):
    project.dreamfile("""
    def fine():
        return [{"x": 1}]
    def boom():
        print("about to fail")
        raise ValueError("no luck on the cluster")
    rule("fine", output="t/fine.parquet", run=fine)
    rule("boom", output="t/boom.parquet", run=boom, resources={"time": 5, "sbatch_args": ["--comment=dm-test"]})
    rule("after", input="t/boom.parquet", output="t/after.parquet", run=lambda input: input)
    rule("all", input=["t/fine.parquet", "t/after.parquet"])
    """)
    out = project.run(*RUN, "-j", "2", "--keep-going", code=2)
    found = re.search(r"error: Dreamfile:8: rule 'boom' failed: ValueError: no luck on the cluster"
                      r" \(Slurm job (\d+), log: (\.dreammake/slurm/run-\d+/boom-\w+\.log)\)\n", out)
    assert found, out
    job_id, log = found.groups()
    text = (project.root / log).read_text()
    assert "about to fail" in text and "Traceback" in text
    assert "  |   File \"Dreamfile\", line 6, in boom" in out, "the log's last lines are shown"
    assert "  | ValueError: no luck on the cluster" in out
    assert "1 job(s) run" in out and "1 failed" in out and "1 not run because of failures" in out
    info = scontrol(job_id)
    assert "JobState=FAILED" in info and "ExitCode=1:0" in info and "TimeLimit=00:05:00" in info
    assert "Comment=dm-test" in info
    assert not (project.root / "t/boom.parquet").exists()
    assert project.plan() == {"boom": "missing", "after": "missing"}, "the finished job is recorded"


@pytest.mark.slurm
def test_gpu_request_reaches_slurm(project):
    project.dreamfile("""
    import os
    rule("train", output="t/train.parquet", run=lambda: [{"job": os.environ["SLURM_JOB_ID"]}],
         resources={"gpus": 2, "cpus": 1})
    """)
    project.run(*RUN)
    info = scontrol(project.read("t/train.parquet")[0]["job"])
    assert "gres/gpu=2" in info or "gres:gpu:2" in info, info


@pytest.mark.slurm
def test_ctrl_c_cancels_submitted_jobs_and_keeps_finished_ones(project):
    project.dreamfile("""
    import os, time
    def quick():
        return [{"x": 1}]
    def slow():
        open("slow.started", "w").write(os.environ["SLURM_JOB_ID"])
        time.sleep(120)
        return [{"x": 2}]
    rule("quick", output="t/quick.parquet", run=quick)
    rule("slow", output="t/slow.parquet", run=slow)
    rule("all", input=["t/quick.parquet", "t/slow.parquet"])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = project.spawn(*RUN, "-j", "2", env=env)
    deadline = time.time() + 60
    while not (project.root / "slow.started").exists() or not (project.root / "t/quick.parquet").exists():
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.1)
    time.sleep(1.0)  # let the coordinator commit the finished job
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "cancelling 1 Slurm job(s)" in out, out
    job_id = (project.root / "slow.started").read_text()
    deadline = time.time() + 30
    while "JobState=CANCELLED" not in scontrol(job_id):
        assert time.time() < deadline, scontrol(job_id)
        time.sleep(0.2)
    assert not (project.root / "t/slow.parquet").exists()
    assert project.plan() == {"slow": "missing"}


SHARDED = """
def topics():
    return {"topic": [f"topic number {i}" for i in range(24)]}

tiny = llm("smollm2-135m-instruct", max_tokens=6, temperature=0.0, batch_size=2)
rule("topics", output="t/topics.parquet", run=topics)
rule("lines", input="t/topics.parquet", output="t/lines.parquet", shards=SHARDS,
     run=rules.process_with_prompt(llm=tiny, instruction="One word about:", input_column="topic",
                                   output_column="line"))
"""


def spooled(root) -> dict[str, int]:
    """Answers in each shard spool of the `lines` job."""
    return {p.name: len(p.read_text().splitlines())
            for p in (root / ".dreammake" / "spool").glob("lines-*.shard*.jsonl")}


@pytest.mark.slurm
def test_sharded_prompt_rule_on_slurm_resumes_after_a_killed_worker(project, tmp_path, smol_checkpoint):
    reference = type(project)(tmp_path / "reference")
    reference.root.mkdir()
    reference.dreamfile(SHARDED.replace("SHARDS", "1"))
    reference.run("t/lines.parquet")  # local executor, in this process: the unsharded output

    project.dreamfile(SHARDED.replace("SHARDS", "2"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = project.spawn(*RUN, "t/lines.parquet", env=env)
    deadline = time.time() + 180
    while sum(spooled(project.root).values()) < 4:  # both workers loaded the model and answer rows
        assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.1)
    tasks = subprocess.run(["squeue", "--noheader", "--array", "--name=dm-gen-lines", "--format=%i"],
                           capture_output=True, text=True).stdout.split()
    assert len(tasks) == 2 and all("_" in t for t in tasks), tasks  # one array job, one task per shard
    victim = sorted(tasks)[1]
    subprocess.run(["scancel", victim], check=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 2, out
    assert "generation worker shard 1" in out and "unanswered" in out and "CANCELLED" in out, out
    answered = sum(spooled(project.root).values())
    assert 4 <= answered < 24
    assert not (project.root / "t/lines.parquet").exists()

    out = project.run(*RUN, "t/lines.parquet")
    assert "generation on 2 worker(s)" in out, out
    assert sum(spooled(project.root).values()) == 24  # the rerun asked only for the missing rows: each row once
    stats = {r["target"]: r for r in json.loads(project.run("status", "--json"))["targets"]}["t/lines.parquet"]
    assert stats.get("llm_calls") == 24 - answered and stats.get("llm_cached") == answered, stats
    assert project.read("t/lines.parquet") == reference.read("t/lines.parquet")
