"""Plan-time checks: `dreammake -n` finds a prompt rule's mistyped input column once the input exists."""

from __future__ import annotations

import os

from conftest import Project

TESTS = os.path.dirname(os.path.abspath(__file__))
DREAMFILE = f"""
import sys
sys.path.insert(0, {TESTS!r})
from fakes import EchoBackend
echo = llm(EchoBackend())
rule("questions", output="targets/questions.parquet", run=rules.rows([{{"question": "Why?", "topic": "sky"}}]))
rule("answers", input="targets/questions.parquet", output="targets/answers.parquet",
     run=rules.prompt(llm=echo, input_column=COLUMN, output_column="answer"))
rule("tweets", input="targets/questions.parquet", output="targets/tweets.parquet",
     run=rules.process_with_prompt(llm=echo, instruction="Tweet it.", input_column="topic", output_column="tweet"))
"""


def test_dry_run_names_a_mistyped_input_column(project: Project) -> None:
    project.dreamfile(DREAMFILE.replace("COLUMN", '"questoin"'))
    assert set(project.plan()) == {"questions", "answers", "tweets"}  # the input is not built: nothing to read yet
    project.run("targets/questions.parquet")
    out = project.run("-n", code=2)
    assert out.strip() == ("error: Dreamfile:7: rule 'answers': targets/questions.parquet has no column 'questoin'"
                           " (did you mean question?) (it has question, topic)"), out
    assert not (project.root / "calls.log").exists()  # found before any job ran

    project.dreamfile(DREAMFILE.replace("COLUMN", '"question"'))
    assert set(project.plan()) == {"answers", "tweets"}
    project.run()
    assert project.read("targets/answers.parquet")[0]["answer"] == "?yhW"
