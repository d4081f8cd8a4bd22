"""LLM rules end to end through the Dreamfile: the real SmolLM2 model (transformers backend), a real
OpenAI-compatible server (`transformers serve`), and a fault-injecting server (SIGKILL resume, 401)."""

from __future__ import annotations

import json
import os
import signal
import time

ROWS = """
def questions():
    return {"q": ["What is the capital of France?", "What is 2 + 2?", "Name a primary colour."]}
rule("questions", output="t/q.parquet", run=questions)
"""


def test_smollm2_through_the_transformers_backend(project, smol_checkpoint):
    project.dreamfile("""
tiny = llm("smollm2-135m-instruct", temperature=0, max_tokens=12)
""" + ROWS + """
rule("answers", input="t/q.parquet", output="t/a.parquet",
     run=rules.process_with_prompt(llm=tiny, instruction="Answer in a few words.", input_column="q",
                                   output_column="a"))
""")
    project.run()
    rows = project.read("t/a.parquet")
    assert "paris" in rows[0]["a"].lower()
    assert all(r["a"].strip() for r in rows)
    stats = json.loads(project.run("status", "--json", "t/a.parquet"))["targets"]
    answers = next(t for t in stats if t["target"] == "t/a.parquet")
    assert answers["llm_calls"] == 3 and answers["completion_tokens"] > 0
    project.run("-F", "t/a.parquet")
    stats = json.loads(project.run("status", "--json", "t/a.parquet"))["targets"]
    assert next(t for t in stats if t["target"] == "t/a.parquet")["llm_cached"] == 3


def test_openai_compatible_server(project, transformers_server):
    api_base, model = transformers_server
    project.dreamfile(f"""
served = llm("openai/{model}", api_base={api_base!r}, temperature=0, max_tokens=10, concurrency=2)
""" + ROWS + """
rule("answers", input="t/q.parquet", output="t/a.parquet",
     run=rules.prompt(llm=served, input_column="q", output_column="a"))
""")
    project.run()
    rows = project.read("t/a.parquet")
    assert "paris" in rows[0]["a"].lower()


def test_sigkill_mid_generation_resends_only_uncommitted_rows(project, fault_server):
    fault_server.latency = 0.05
    project.dreamfile(f"""
api = llm("openai/test-model", api_base={fault_server.api_base!r}, concurrency=2)
rule("questions", output="t/q.parquet", run=lambda: {{"q": [f"row {{i}}" for i in range(80)]}})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
""")
    proc = project.spawn()
    deadline = time.time() + 120
    while sum(fault_server.answered.values()) < 30:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = sum(fault_server.answered.values())
    project.run()
    total = sum(fault_server.answered.values())
    resent = total - 80
    # only rows answered but not yet committed (at most half a second of work at 2 in flight) are asked again
    assert 0 <= resent <= 25, (first, total)
    assert all(fault_server.answered[f"row {i}"] >= 1 for i in range(80))
    assert project.read("t/a.parquet") == [{"q": f"row {i}", "a": f"echo: row {i}"} for i in range(80)]


def test_401_fails_fast_with_one_line_and_no_key_anywhere(project, fault_server, monkeypatch):
    secret = "sk-test-SECRET-123456"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    project.dreamfile(f"""
api = llm("openai/test-model", api_base={fault_server.api_base!r})
rule("questions", output="t/q.parquet", run=lambda: {{"q": ["401 please"]}})
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
""")
    out = project.run(code=2)
    assert "rule 'answers'" in out and "test-model" in out and "401" in out
    assert secret not in out
    assert fault_server.attempts["401 please"] == 1
    for folder, _, files in os.walk(project.root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert secret.encode() not in f.read(), name
