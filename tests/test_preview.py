"""`dreammake preview RULE`: a prompt rule on its first N rows, printed with its exact messages, nothing
written, and the rows reused by the build that follows."""

from __future__ import annotations

import json
import os
import re

import pytest
from fakes import calls
from ux_helpers import FakeTerminal, assert_one_error_line

HEADER = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
m = llm(EchoBackend())
rule("src", output="t/src.parquet", run=lambda: {{"abstract": [f"abstract {{i}}" for i in range(12)],
                                                     "draft": [f"draft {{i}}" for i in range(12)]}})
"""
KINDS = {
    "process_with_prompt": """rules.process_with_prompt(llm=m, instruction="Tweet it.", input_column="abstract",
        output_column="tweet", system="Be brief.")""",
    "data_from_prompt": """rules.data_from_prompt(llm=m, instruction="Write an abstract.", n=12, seed=3)""",
    "few_shot_prompt": """rules.few_shot_prompt(llm=m, examples="t/src.parquet", input_column="abstract", k=2,
        output_column="out", example_output_column="abstract", sample=True, seed=7, instruction="Continue.")""",
    "judge_pairs": """rules.judge_pairs(llm=m, a_column="abstract", b_column="draft")""",
}


def dreamfile(kind: str) -> str:
    gen = f'rule("gen", input="t/src.parquet", output="t/gen.parquet", run={KINDS[kind]})\n'
    return HEADER + gen + 'rule("all", input=["t/gen.parquet"])\n'


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_preview_then_build_saves_exactly_the_previewed_calls(tmp_path, kind):
    from conftest import Project

    alone, previewed = Project(tmp_path / "alone"), Project(tmp_path / "previewed")
    for project in (alone, previewed):
        project.dreamfile(dreamfile(kind))
        project.run("src")
    alone.run("all")
    per_row = 2 if kind == "judge_pairs" else 1  # the judge asks again with the pair swapped
    assert len(calls(alone.root)) == 12 * per_row

    out = previewed.run("preview", "gen", "-n", "5", "--json")
    assert len(calls(previewed.root)) == 5 * per_row
    assert not (previewed.root / "t/gen.parquet").exists()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["row"] for r in rows] == [i for i in range(5) for _ in range(per_row)]
    assert all(r["generation"] == r["messages"][-1]["content"][::-1] and not r["cached"] for r in rows)
    assert f"0 request(s) from the row cache, {5 * per_row} generated now" in out

    previewed.run("all")
    calls_in_all = len(calls(previewed.root)) - 5 * per_row
    assert len(calls(alone.root)) - calls_in_all == 5 * per_row
    assert previewed.read("t/gen.parquet") == alone.read("t/gen.parquet")


def test_messages_are_exact_and_a_second_preview_comes_from_the_cache(project):
    project.dreamfile(dreamfile("process_with_prompt"))
    project.run("src")
    project.run("preview", "gen", "-n", "2")
    out = project.run("preview", "t/gen.parquet", "-n", "3", "--json")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert rows[0]["messages"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Tweet it.\n\nabstract 0"}]
    assert [r["cached"] for r in rows] == [True, True, False]
    assert len(calls(project.root)) == 3

    text = project.run("preview", "gen", "-n", "1")  # not a terminal: tab-separated
    assert "row\tfrom\tmessages\tgeneration" in text
    assert "0\tcache\t[system] Be brief. [user] Tweet it.⏎⏎abstract 0\t0 tcartsba⏎⏎.ti teewT" in text


def test_rich_table_on_a_terminal(project):
    from dreammake import preview

    row = preview.Prompted(0, [{"role": "user", "content": "Say [bold]hi[/bold]"}], "hi there", cached=True)
    screen = FakeTerminal()
    preview.print_rows([row], screen)
    text = re.sub(r"\x1b\[[0-9;]*m", "", screen.getvalue())  # colours off
    assert "user: Say [bold]hi[/bold]" in text and "hi there" in text and "cache" in text and "┃" in text


def test_errors_are_one_line(project):
    project.dreamfile(dreamfile("process_with_prompt"))
    line = assert_one_error_line(project.run("preview", "gen", code=2))
    assert "rule 'gen' needs t/src.parquet, not built yet — run `dreammake t/src.parquet` first" in line
    line = assert_one_error_line(project.run("preview", "src", code=2))
    assert "rule 'src' is a function rule, not a prompt rule — prompt rules here: gen" in line
    line = assert_one_error_line(project.run("preview", "all", code=2))
    assert "rule 'all' is an aggregate rule, not a prompt rule" in line
    line = assert_one_error_line(project.run("preview", "gne", code=2))
    assert "no rule makes gne" in line and "did you mean gen?" in line
    assert calls(project.root) == []
