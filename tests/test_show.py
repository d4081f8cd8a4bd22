"""`dreammake show TARGET`: rows of a Parquet target as a table, text or JSON lines; one-line errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from ux_helpers import FakeTerminal, assert_one_error_line

from dreammake import show

LONG = "word " * 100  # 500 characters
DREAMFILE = """
def make():
    return [{"id": i, "text": ("word " * 100) if i == 0 else f"row {i}\\tnew\\nline", "tags": ["a", "b"],
             "score": None if i == 1 else i / 2} for i in range(30)]

def checkpoint(output):
    import os
    with open(os.path.join(output, "weights.txt"), "w") as f:
        f.write("1")

rule("rows", output="t/rows.parquet", run=make)
rule("halves", input="t/rows.parquet", output={"a": "t/a.parquet", "b": "t/b.parquet"}, run=rules.splits(a=0.5, b=0.5))
rule("model", output="models/m/", run=checkpoint)
rule("later", input="t/rows.parquet", output="t/later.parquet", run=lambda input: input)
rule("all", input=["t/rows.parquet", "models/m/"])
"""


def built(project):
    project.dreamfile(DREAMFILE)
    project.run("all")
    return project


def test_text_rows_by_path_or_rule_name(project):
    built(project)
    out = project.run("show", "rows", "-n", "3")
    lines = out.splitlines()
    assert lines[0] == "id\ttext\ttags\tscore"
    assert len(lines) == 4 and project.run("show", "t/rows.parquet", "-n", "3") == out
    first = lines[1].split("\t")
    assert first[0] == "0" and len(first[1]) == show.TEXT_CELL and first[1].endswith("…")  # a long cell is cut
    assert first[2] == '["a", "b"]' and first[3] == "0.0"
    assert lines[2].split("\t") == ["1", "row 1 new⏎line", '["a", "b"]', "null"]  # one line per row, tabs kept out
    assert len(project.run("show", "rows").splitlines()) == 21  # 20 rows by default


def test_columns_json_and_sample(project):
    built(project)
    out = project.run("show", "rows", "--columns", "score,id", "-n", "2")
    assert out.splitlines() == ["score\tid", "0.0\t0", "null\t1"]
    rows = [json.loads(line) for line in project.run("show", "rows", "--json", "-n", "2").splitlines()]
    assert rows[0] == {"id": 0, "text": LONG, "tags": ["a", "b"], "score": 0.0}  # complete values
    sampled = [json.loads(line)["id"] for line in
               project.run("show", "rows", "--sample", "-n", "10", "--json", "--columns", "id").splitlines()]
    assert len(sampled) == 10 and sampled == sorted(set(sampled)) and set(sampled) <= set(range(30))
    assert project.run("show", "rows", "-n", "0") == "id\ttext\ttags\tscore\n"


def test_sample_reads_across_row_groups(tmp_path):
    path = str(tmp_path / "groups.parquet")
    pq.write_table(pa.table({"i": list(range(100))}), path, row_group_size=7)
    table, total = show.read_rows(path, 40, sample=True)
    values = table.column("i").to_pylist()
    assert total == 100 and len(values) == 40 and values == sorted(set(values))
    head, _ = show.read_rows(path, 15, ["i"])
    assert head.column("i").to_pylist() == list(range(15))
    everything, _ = show.read_rows(path, 1000, sample=True)
    assert everything.column("i").to_pylist() == list(range(100))


def test_rich_table_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    path = str(tmp_path / "x.parquet")
    pq.write_table(pa.table({"name": ["[bold]not markup[/bold]", LONG], "n": [1, 2]}), path)
    table, total = show.read_rows(path, 5)
    screen = FakeTerminal()
    show.print_rows(table, total, path, screen)
    text = screen.getvalue()
    assert "┏" in text and "[bold]not markup[/bold]" in text and "2 of 2 rows of" in text
    assert "…" in text and LONG not in text


def test_a_source_parquet_file(project):
    built(project)
    pq.write_table(pa.table({"q": ["hello"]}), project.root / "data.parquet")
    assert project.run("show", "data.parquet") == "q\nhello\n"


def test_errors_are_one_line(project):
    built(project)
    line = assert_one_error_line(project.run("show", "t/row.parquet", code=2))
    assert "no rule makes t/row.parquet — did you mean t/rows.parquet?" in line
    assert "did you mean rows?" in assert_one_error_line(project.run("show", "rowz", code=2))
    line = assert_one_error_line(project.run("show", "rows", "--columns", "id,scor", code=2))
    assert "t/rows.parquet has no column 'scor' (did you mean score?)" in line
    line = assert_one_error_line(project.run("show", "model", code=2))
    assert "models/m/ is a folder target" in line
    line = assert_one_error_line(project.run("show", "halves", code=2))
    assert "rule 'halves' makes 2 outputs — show one of them: t/a.parquet, t/b.parquet" in line
    assert "aggregate rule" in assert_one_error_line(project.run("show", "all", code=2))
    line = assert_one_error_line(project.run("show", "later", code=2))
    assert "t/later.parquet is not built yet — run `dreammake later` first" in line
    (project.root / "notes.txt").write_text("not a table")
    assert "cannot read notes.txt as Parquet" in assert_one_error_line(project.run("show", "notes.txt", code=2))
