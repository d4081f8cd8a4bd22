"""API fine-tuning (`rules.train_openai_finetune`) against a fake OpenAI-compatible server: upload, job, polling,
a target usable as `llm(target(...))`, and a killed run that reattaches to its job instead of creating another."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from openai_jobs_server import JobsServer


@pytest.fixture
def jobs():
    server = JobsServer()
    yield server
    server.close()


FINETUNE = """
rule("pairs", output="t/pairs.parquet", run=rules.rows({{"q": ["2+2?", "capital of France?"], "a": ["4", "Paris"]}}))
rule("ft", input="t/pairs.parquet", output="models/ft/",
     run=rules.train_openai_finetune(base="openai/gpt-4o-mini-2024-07-18", input_column="q", output_column="a",
                                     system="Be brief.", api_base={base!r}, hyperparameters={{"n_epochs": 2}},
                                     poll_s=0.05))
tuned = llm(target("models/ft/"), max_tokens=8)
rule("answers", input="t/pairs.parquet", output="t/answers.parquet",
     run=rules.prompt(llm=tuned, input_column="q", output_column="answer"))
"""


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_fine_tune_through_the_api_and_generate_with_it(project, jobs, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-FINETUNE-key-123456")
    project.dreamfile(FINETUNE.format(base=jobs.api_base))
    out = project.run()
    assert "fine-tuning job ftjob-1 created" in out and "ftjob-1: succeeded" in out
    (job,) = jobs.jobs.values()
    assert job["hyperparameters"] == {"n_epochs": 2}
    lines = [json.loads(line) for line in jobs.files[job["training_file"]].decode().splitlines()]
    assert lines[0]["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                    {"role": "assistant", "content": "4"}]
    model = json.loads((project.root / "models/ft/dreammake-api-model.json").read_text())
    assert model["model"] == "openai/ft:gpt-4o-mini-2024-07-18:acme::ftjob-1"
    answers = project.read("t/answers.parquet")
    assert answers[0]["answer"] == "ft:gpt-4o-mini-2024-07-18:acme::ftjob-1 says: 2+2?"
    assert project.plan() == {}
    for folder, _, names in os.walk(project.root):
        for name in names:
            assert b"FINETUNE-key" not in open(os.path.join(folder, name), "rb").read(), name


def test_a_killed_run_reattaches_to_its_fine_tuning_job(project, jobs):
    project.dreamfile(FINETUNE.format(base=jobs.api_base))
    jobs.hold.set()  # the job runs until released
    proc = project.spawn("models/ft/")
    wait_for(lambda: any(j["status"] == "running" for j in jobs.jobs.values()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert len(jobs.jobs) == 1 and len(jobs.files) == 1
    jobs.hold.clear()
    out = project.run()
    assert "reattached to fine-tuning job ftjob-1" in out and "created" not in out
    assert len(jobs.jobs) == 1 and len(jobs.files) == 1  # no second upload, no second job
    assert project.read("t/answers.parquet")[1]["answer"].startswith("ft:gpt-4o-mini-2024-07-18:acme::ftjob-1")


BATCH = """
api = llm("openai/gpt-4o-mini", api_base={base!r}, batch=True, batch_poll_s=0.05)
rule("qs", output="t/qs.parquet", run=rules.rows({{"q": {questions!r}}}))
rule("answers", input="t/qs.parquet", output="t/answers.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
"""


def test_batch_generation_sends_the_misses_as_one_batch(project, jobs):
    project.dreamfile(BATCH.format(base=jobs.api_base, questions=["one", "two", "three"]))
    out = project.run()
    assert "batch batch-1 created for 3 request(s)" in out and "batch-1: completed (3/3 requests)" in out
    assert [r["a"] for r in project.read("t/answers.parquet")] == [f"gpt-4o-mini says: {q}" for q in
                                                                   ("one", "two", "three")]
    assert jobs.chats == []  # nothing went through the synchronous endpoint
    project.dreamfile(BATCH.format(base=jobs.api_base, questions=["one", "two", "three", "four"]))
    project.run()
    assert len(jobs.batches) == 2 and jobs.batches["batch-2"]["request_counts"]["total"] == 1  # only the miss
    assert not list((project.root / ".dreammake" / "batches").iterdir())


def test_a_killed_run_reattaches_to_its_batch(project, jobs):
    project.dreamfile(BATCH.format(base=jobs.api_base, questions=["one", "two"]))
    jobs.hold.set()
    proc = project.spawn()
    wait_for(lambda: any(b["status"] == "finalizing" for b in jobs.batches.values()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    jobs.hold.clear()
    out = project.run()
    assert "reattached to batch batch-1" in out
    assert len(jobs.batches) == 1 and len(jobs.files) == 2  # one input file, one output file: nothing sent twice
    assert [r["a"] for r in project.read("t/answers.parquet")] == ["gpt-4o-mini says: one", "gpt-4o-mini says: two"]


def test_batch_answers_cost_the_batch_price():
    from dreammake.llm.openai_http import OpenAIHTTPBackend

    backend = OpenAIHTTPBackend("openai/gpt-4o-mini")  # priced: not a local server
    data = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}
    now, batch = backend.response_of(data, 0.0).cost_usd, backend.response_of(data, 0.0, batch=True).cost_usd
    assert now > 0 and batch == pytest.approx(now / 2)
