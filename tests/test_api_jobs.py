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
