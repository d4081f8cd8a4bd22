"""Row-level generation cache: incremental reruns, resume after SIGKILL, spend, --max-cost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

from fakes import calls

HEADER = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
"""

PROMPTS = HEADER + """
import pyarrow as pa
N = config.get("n", 100)
changed = config.get("changed", -1)

def questions():
    return {"q": [f"question {i}" + (" edited" if i == changed else "") for i in range(N)]}

echo = llm(EchoBackend(delay=config.get("delay", 0.0)), temperature=0)
rule("questions", output="t/q.parquet", run=questions)
rule("answers", input="t/q.parquet", output="t/a.parquet",
     run=rules.prompt(llm=echo, input_column="q", output_column="a", template=config.get("template")))
"""


def test_changing_one_of_100_inputs_makes_one_call(project):
    project.dreamfile(PROMPTS)
    project.run()
    assert len(calls(project.root)) == 100
    rows = project.read("t/a.parquet")
    assert rows[3] == {"q": "question 3", "a": "3 noitseuq"}
    project.run("--config", "changed=42")
    assert len(calls(project.root)) == 101
    assert calls(project.root)[-1] == "question 42 edited"
    assert project.read("t/a.parquet")[42]["a"] == "detide 24 noitseuq"


def test_exact_rerun_and_template_change(project):
    project.dreamfile(PROMPTS)
    project.run()
    project.run("-F")
    assert len(calls(project.root)) == 100, "a forced rerun is served from the cache"
    project.run("--config", 'template="Q: {{ q }}"')
    assert len(calls(project.root)) == 200, "a new template changes every prompt"
    assert project.read("t/a.parquet")[0]["a"] == "0 noitseuq :Q"


def test_status_reports_spend(project):
    project.dreamfile(PROMPTS)
    project.run()
    data = json.loads(project.run("status", "--json", "t/a.parquet"))
    answers = next(t for t in data["targets"] if t["target"] == "t/a.parquet")
    assert answers["llm_calls"] == 100 and answers["llm_cached"] == 0
    assert answers["prompt_tokens"] == 200 and answers["completion_tokens"] == 200
    assert abs(answers["cost_usd"] - 0.1) < 1e-9
    project.run("-F", "t/a.parquet")
    data = json.loads(project.run("status", "--json", "t/a.parquet"))
    answers = next(t for t in data["targets"] if t["target"] == "t/a.parquet")
    assert answers["llm_calls"] == 0 and answers["llm_cached"] == 100 and answers["cost_usd"] == 0


def test_max_cost_stops_and_rerun_continues(project):
    project.dreamfile(PROMPTS)
    out = project.run("--max-cost", "0.0305", code=2)
    assert "stopped at --max-cost $0.0305" in out
    assert not (project.root / "t/a.parquet").exists()
    first = len(calls(project.root))
    assert 31 <= first <= 32
    project.run()
    assert len(calls(project.root)) == 100, "rows paid for before the stop are not asked again"


def test_cache_travels_with_the_state_folder(project, tmp_path_factory):
    project.dreamfile(PROMPTS)
    project.run()
    other = tmp_path_factory.mktemp("colleague")
    shutil.copy(project.root / "Dreamfile", other / "Dreamfile")
    shutil.copytree(project.root / ".dreammake", other / ".dreammake")
    from conftest import Project

    colleague = Project(other)
    colleague.run()
    assert calls(other) == [], "the colleague's run is served entirely from the copied cache"
    assert colleague.read("t/a.parquet") == project.read("t/a.parquet")


def test_sigkill_mid_generation_resumes_with_only_missing_rows(project):
    project.dreamfile(PROMPTS)
    proc = project.spawn("--config", "delay=0.02")
    deadline = time.time() + 60
    while len(calls(project.root)) < 60:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = calls(project.root)
    assert not (project.root / "t/a.parquet").exists()
    project.run()
    after = calls(project.root)
    resent = after[len(before):]
    # every row was generated, and only rows that were not committed (at most one batch in flight) were resent
    assert set(before) | set(resent) == {f"question {i}" for i in range(100)}
    assert len(resent) <= 100 - len(before) + 30, (len(before), len(resent))
    assert len(resent) < 100
    clean = project.read("t/a.parquet")
    assert clean == [{"q": f"question {i}", "a": f"question {i}"[::-1]} for i in range(100)]


def test_bad_prompt_arguments_name_the_line(project):
    project.dreamfile(HEADER + """
echo = llm(EchoBackend())
rule("a", input="x.parquet", output="t/a.parquet", run=rules.prompt(llm=echo, input_column="q", temprature=1))
""")
    out = project.run(code=2)
    assert "Dreamfile:7: TypeError: rules.prompt() got an unknown option 'temprature'" in out
    assert "(did you mean temperature?)" in out


def test_cache_commands(project, tmp_path_factory):
    project.dreamfile(PROMPTS)
    project.run()
    stats = json.loads(project.run("cache", "stats", "--json"))
    assert stats["entries"] == 100
    out = project.run("cache", "export", "cache.parquet")
    assert "100 row(s) written" in out
    assert "say what to prune" in project.run("cache", "prune", code=2)
    assert "100 cached row(s) deleted" in project.run("cache", "prune", "--all")
    assert "100 new row(s) imported" in project.run("cache", "import", "cache.parquet")
    project.run("-F")
    assert len(calls(project.root)) == 100
    assert "0 cached row(s) deleted" in project.run("cache", "prune", "--older-than", "1")


def test_a_retrained_checkpoint_never_reuses_old_rows(project):
    """`llm(target(...))`: the row-cache key includes the checkpoint's content, not just its path."""
    project.dreamfile(HEADER + """
def make_model(output):
    import os
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "weights.bin"), "w") as f:
        f.write(str(config.get("version", 1)))

rule("model", output="models/m/", run=make_model)
tuned = llm(target("models/m/"))
rule("q", output="t/q.parquet", run=lambda: {"q": ["a", "b"]})
rule("a", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=tuned, input_column="q"))
""")
    from dreammake.llm.handle import LLM

    seen = []
    original = LLM.backend

    def fake_backend(self):
        from fakes import EchoBackend

        backend = EchoBackend(reply=lambda t: t + open("models/m/weights.bin").read())
        seen.append(self.target)
        return backend

    LLM.backend = fake_backend
    try:
        project.run()
        assert [r["output"] for r in project.read("t/a.parquet")] == ["a1", "b1"]
        project.run("--config", "version=2")
        assert [r["output"] for r in project.read("t/a.parquet")] == ["a2", "b2"]
    finally:
        LLM.backend = original
    assert seen and seen[0] == "models/m"
