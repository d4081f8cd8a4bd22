"""Options are checked where the Dreamfile gives them: a typo is one line naming the line and the closest valid
name, exit 2; `api_key=` reaches the server and nowhere else."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize(("call", "suggestion"), [
    ("llm('openai/x', api_base=BASE, temprature=0.0)", "'temprature' (did you mean temperature?)"),
    ("llm('openai/x', api_base=BASE, concurency=2)", "'concurency' (did you mean concurrency?)"),
    ("llm('openai/x', api_base=BASE, api_kye='sk-abcdefgh')", "'api_kye' (did you mean api_key?)"),
    ("llm('anthropic/claude-x', max_retrys=2)", "'max_retrys' (did you mean max_retries?)"),
    ("llm('smollm2-135m-instruct', batchsize=4)", "'batchsize' (did you mean batch_size?)"),
    ("llm('smollm2-135m-instruct', quantization='4bit')", "the transformers backend does not take: 'quantization'"),
    ("llm(target('models/m/'), sytem_prompt='Be brief.')", "'sytem_prompt' (did you mean system_prompt?)"),
])
def test_llm_rejects_unknown_options(project, call, suggestion):
    project.dreamfile(f"BASE = 'http://127.0.0.1:9/v1'\n\nm = {call}\n")
    out = project.run("-n", code=2)
    assert out.startswith("error: Dreamfile:3: TypeError: llm(")
    assert suggestion in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(("call", "suggestion"), [
    ("rules.process_with_prompt(llm=m, instruction='Hi.', input_column='x', output_colum='y')",
     "rules.process_with_prompt() got an unknown option 'output_colum' (did you mean output_column?)"),
    ("rules.data_from_prompt(llm=m, instruction='Hi.', n=2, temprature=1.0)",
     "rules.data_from_prompt() got an unknown option 'temprature' (did you mean temperature?)"),
    ("rules.shuffle(sed=1)", "rules.shuffle() got an unknown option 'sed' (did you mean seed?)"),
    ("rules.take(count=3)", "rules.take() got an unknown option 'count'"),
    ("rules.embed(input_colum='text')",
     "rules.embed() got an unknown option 'input_colum' (did you mean input_column?)"),
    ("rules.filter_with_prompt(llm=m, instruction='Good?', input_column='x', kep=None)",
     "(did you mean keep?)"),
])
def test_rule_kinds_reject_unknown_options(project, call, suggestion):
    project.dreamfile(f"m = llm('openai/x', api_base='http://127.0.0.1:9/v1')\n\n"
                      f"rule('r', input='in.parquet', output='out.parquet', run={call})\n")
    out = project.run("-n", code=2)
    assert "Dreamfile:3: TypeError: " in out
    assert suggestion in out


SECRET = "sk-test-Q9x8Y7w6V5u4T3s2"


def _grep(root, needle: str) -> list[str]:
    hits = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                if needle.encode() in f.read():
                    hits.append(path)
    return hits


@pytest.mark.parametrize("how", ["api_key", "api_key_env"])
def test_api_key_reaches_the_server_and_nowhere_else(project, fault_server, monkeypatch, how):
    if how == "api_key":
        given = f"api_key={SECRET!r}"
    else:
        monkeypatch.setenv("MY_LAB_KEY", SECRET)
        given = "api_key_env='MY_LAB_KEY'"
    project.dreamfile(f"""
    m = llm("openai/test-model", api_base={fault_server.api_base!r}, {given}, temperature=0.0)
    rule("src", output="t/q.parquet", run=lambda: [{{"q": "a"}}, {{"q": "b"}}])
    rule("answers", input="t/q.parquet", output="t/a.parquet",
         run=rules.process_with_prompt(llm=m, instruction="Answer.", input_column="q", output_column="a"))
    """)
    out = project.run()
    assert fault_server.authorizations and set(fault_server.authorizations) == {f"Bearer {SECRET}"}
    assert [r["a"].startswith("echo:") for r in project.read("t/a.parquet")] == [True, True]
    project.run("report", "-o", "report.html")
    project.run("status", "--json")
    hits = [h for h in _grep(project.root, SECRET) if not h.endswith("Dreamfile")]
    assert hits == [] and SECRET not in out


def test_secret_names_are_credentials_not_counts():
    from dreammake.cards.secrets import scrub_command
    from dreammake.llm.handle import is_secret

    for name in ("api_key", "OPENAI_API_KEY", "HF_TOKEN", "token", "aws_secret_access_key", "password", "apikey"):
        assert is_secret(name), name
    for name in ("max_tokens", "tokenizer", "keyword", "top_k", "monkey"):
        assert not is_secret(name), name
    line = scrub_command("dreammake all --config max_tokens=60 --config api_key=sk-abcdefghijkl")
    assert "max_tokens=60" in line and "sk-abcdefghijkl" not in line
