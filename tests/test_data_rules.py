"""Data rule kinds (dreammake.rules.data) end to end through the CLI: exact output rows, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HEADER = "from dreammake.rules import data\n"
ROWS = [{"id": i, "word": w} for i, w in enumerate(["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis",
                                                    "jay"])]


def put(project, path: str, rows: list[dict] | pa.Table, row_group_size: int | None = None) -> Path:
    """Write an input Parquet file into the project."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    full = project.root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, full, row_group_size=row_group_size)
    return full


def build(project, body: str, rows: list[dict] | None = None, *targets: str, code: int = 0) -> str:
    """Write src/in.parquet and a Dreamfile (HEADER + body), then run dreammake."""
    put(project, "src/in.parquet", ROWS if rows is None else rows)
    project.dreamfile(HEADER + body)
    return project.run(*targets, code=code)


# -- map / filter --------------------------------------------------------------------------------------------
def test_map_rows_replaces_each_row(project):
    build(project, 'rule("m", input="src/in.parquet", output="t/m.parquet",'
                   ' run=data.map(lambda row: {"id": row["id"], "shout": row["word"].upper() + "!"}))\n')
    assert project.read("t/m.parquet")[:3] == [{"id": 0, "shout": "ANT!"}, {"id": 1, "shout": "BEE!"},
                                               {"id": 2, "shout": "CAT!"}]
    assert len(project.read("t/m.parquet")) == 10


def test_map_batched_may_change_row_count(project):
    body = '''
def pairs(batch):
    return {"word": [w for w in batch["word"] for _ in range(2)], "copy": [c for _ in batch["word"] for c in (0, 1)]}

rule("m", input="src/in.parquet", output="t/m.parquet", run=data.map(pairs, batched=True, batch_size=3))
'''
    build(project, body, ROWS[:2])
    assert project.read("t/m.parquet") == [{"word": "ant", "copy": 0}, {"word": "ant", "copy": 1},
                                           {"word": "bee", "copy": 0}, {"word": "bee", "copy": 1}]


def test_map_streams_many_batches_in_order(project):
    """25,000 rows in 7 row groups go through the map in several batches; order and values are kept, and a
    column that is all-null in the first batch takes its type from a later one."""
    n = 25_000
    put(project, "src/big.parquet", pa.table({"i": list(range(n))}), row_group_size=4000)
    project.dreamfile(HEADER + '''
rule("m", input="src/big.parquet", output="t/m.parquet",
     run=data.map(lambda row: {"i": row["i"], "sq": row["i"] * row["i"],
                               "late": None if row["i"] < 12_000 else str(row["i"])}))
''')
    out = project.run()
    assert "25,000 rows" in out
    table = pq.read_table(project.root / "t/m.parquet")
    assert table.column("i").to_pylist() == list(range(n))
    assert table.column("sq").to_pylist() == [i * i for i in range(n)]
    assert table.schema.field("late").type == pa.string()
    assert table.column("late").to_pylist() == [None] * 12_000 + [str(i) for i in range(12_000, n)]


def test_map_errors_name_the_row(project):
    out = build(project, 'rule("m", input="src/in.parquet", output="t/m.parquet", run=data.map(lambda row: 1))\n',
                code=2)
    assert "Dreamfile:2: rule 'm': the map function returned a int for row 0; it must return a dict" in out
    project.dreamfile(HEADER + 'rule("m", input="src/in.parquet", output="t/m.parquet",'
                               ' run=data.map(lambda row: {"x": 10 // (row["id"] - 3)}))\n')
    out = project.run(code=2)
    assert "rule 'm': map function failed on row 3: ZeroDivisionError" in out


def test_filter_rows_and_batched(project):
    body = '''
rule("f", input="src/in.parquet", output="t/f.parquet", run=data.filter(lambda row: "e" in row["word"]))
rule("g", input="src/in.parquet", output="t/g.parquet",
     run=data.filter(lambda batch: [i % 3 == 0 for i in batch["id"]], batched=True, batch_size=4))
rule("none", input="src/in.parquet", output="t/none.parquet", run=data.filter(lambda row: False))
'''
    build(project, body)
    assert project.read("t/f.parquet") == [{"id": 1, "word": "bee"}, {"id": 4, "word": "eel"},
                                           {"id": 7, "word": "hen"}]
    assert [r["id"] for r in project.read("t/g.parquet")] == [0, 3, 6, 9]
    assert project.read("t/none.parquet") == []
    assert pq.read_schema(project.root / "t/none.parquet").names == ["id", "word"]


def test_code_edit_reruns_map(project):
    body = 'rule("m", input="src/in.parquet", output="t/m.parquet", run=data.map(lambda row: {"n": row["id"] + 1}))\n'
    build(project, body)
    assert project.plan() == {}
    project.dreamfile(HEADER + body.replace("+ 1", "+ 2"))
    assert project.plan() == {"m": "code"}


# -- columns -------------------------------------------------------------------------------------------------
def test_select_and_rename_columns(project):
    rows = [{"a": 1, "b": "x", "c": True}, {"a": 2, "b": "y", "c": False}]
    build(project, '''
rule("s", input="src/in.parquet", output="t/s.parquet", run=data.select_columns("c", "a"))
rule("r", input="src/in.parquet", output="t/r.parquet", run=data.rename_columns({"a": "n", "c": "flag"}))
''', rows)
    assert project.read("t/s.parquet") == [{"c": True, "a": 1}, {"c": False, "a": 2}]
    assert pq.read_schema(project.root / "t/s.parquet").names == ["c", "a"]
    assert project.read("t/r.parquet") == [{"n": 1, "b": "x", "flag": True}, {"n": 2, "b": "y", "flag": False}]


def test_bad_column_names_are_clear_errors(project):
    out = build(project, 'rule("s", input="src/in.parquet", output="t/s.parquet", run=data.select_columns("wrd"))\n',
                code=2)
    assert ("Dreamfile:2: rule 's': select_columns: src/in.parquet has no column 'wrd' (did you mean word?)"
            " (it has id, word)") in out
    project.dreamfile(HEADER + 'rule("s", input="src/in.parquet", output="t/s.parquet", run=data.sort(by="size"))\n')
    assert "rule 's': sort by=: src/in.parquet has no column 'size'" in project.run(code=2)
    project.dreamfile(HEADER + 'rule("r", input="src/in.parquet", output="t/r.parquet",'
                               ' run=data.rename_columns({"id": "word"}))\n')
    assert "rule 'r': rename_columns: the new names clash: 'word' would name two columns" in project.run(code=2)
    project.dreamfile(HEADER + 'rule("d", input="src/in.parquet", output="t/d.parquet", run=data.dedupe(["x"]))\n')
    assert "rule 'd': dedupe columns=: src/in.parquet has no column 'x'" in project.run(code=2)


def test_wrong_number_of_inputs_is_caught_at_load(project):
    out = build(project, 'rule("m", input=["src/in.parquet", "src/in.parquet"], output="t/m.parquet",'
                         ' run=data.take(1))\n', code=2)
    assert "Dreamfile:2: rule 'm': rules.take() reads exactly one input; the rule has 2" in out


def test_non_parquet_input_is_an_error(project):
    project.write("src/a.csv", "x\n1\n")
    project.dreamfile(HEADER + 'rule("t", input="src/a.csv", output="t/t.parquet", run=data.take(1))\n')
    out = project.run(code=2)
    assert "rule 't': input src/a.csv is not a Parquet file — read it into Parquet first with rules.read()" in out


# -- row ranges ----------------------------------------------------------------------------------------------
def test_take_and_skip(project):
    build(project, '''
rule("take", input="src/in.parquet", output="t/take.parquet", run=data.take(3))
rule("skip", input="src/in.parquet", output="t/skip.parquet", run=data.skip(8))
rule("every", input="src/in.parquet", output="t/all.parquet", run=data.take(100))
rule("nothing", input="src/in.parquet", output="t/nothing.parquet", run=data.skip(100))
''')
    assert project.read("t/take.parquet") == ROWS[:3]
    assert project.read("t/skip.parquet") == ROWS[8:]
    assert project.read("t/all.parquet") == ROWS
    assert project.read("t/nothing.parquet") == []
    assert pq.read_schema(project.root / "t/nothing.parquet").names == ["id", "word"]


def test_take_skip_across_row_groups(project):
    put(project, "src/big.parquet", pa.table({"i": list(range(1000))}), row_group_size=64)
    project.dreamfile(HEADER + '''
rule("mid", input="src/big.parquet", output="t/mid.parquet", run=data.skip(130))
rule("head", input="src/big.parquet", output="t/head.parquet", run=data.take(200))
''')
    project.run()
    assert [r["i"] for r in project.read("t/mid.parquet")] == list(range(130, 1000))
    assert [r["i"] for r in project.read("t/head.parquet")] == list(range(200))


def test_shard_contiguous_and_strided(project):
    build(project, '''
rule("s0", input="src/in.parquet", output="t/s0.parquet", run=data.shard(3, 0))
rule("s2", input="src/in.parquet", output="t/s2.parquet", run=data.shard(3, 2))
rule("k1", input="src/in.parquet", output="t/k1.parquet", run=data.shard(4, 1, contiguous=False))
''')
    assert [r["id"] for r in project.read("t/s0.parquet")] == [0, 1, 2, 3]
    assert [r["id"] for r in project.read("t/s2.parquet")] == [7, 8, 9]
    assert [r["id"] for r in project.read("t/k1.parquet")] == [1, 5, 9]


def test_bad_shard_index_names_the_line(project):
    out = build(project, 'rule("s", input="src/in.parquet", output="t/s.parquet", run=data.shard(2, 2))\n', code=2)
    assert "Dreamfile:2: ValueError: shard(): i (the shard index) must be an integer in 0..1, got 2" in out


# -- global order --------------------------------------------------------------------------------------------
def test_shuffle_is_seeded_and_stable(project):
    build(project, '''
rule("a", input="src/in.parquet", output="t/a.parquet", run=data.shuffle(seed=0))
rule("b", input="src/in.parquet", output="t/b.parquet", run=data.shuffle(seed=1))
''')
    # the order depends only on (row count, seed): pinned here so it never changes between versions
    assert [r["id"] for r in project.read("t/a.parquet")] == [1, 6, 0, 7, 4, 3, 9, 8, 5, 2]
    assert [r["id"] for r in project.read("t/b.parquet")] == [2, 4, 6, 9, 5, 0, 8, 3, 7, 1]
    assert project.read("t/a.parquet")[0] == {"id": 1, "word": "bee"}


def test_sort_multi_key_stable_nulls_last(project):
    rows = [{"k": "b", "v": 1, "n": 0}, {"k": "a", "v": 2, "n": 1}, {"k": None, "v": 9, "n": 2},
            {"k": "b", "v": 3, "n": 3}, {"k": "a", "v": 2, "n": 4}]
    build(project, '''
rule("s", input="src/in.parquet", output="t/s.parquet", run=data.sort(by=["k", "v"], descending=[False, True]))
rule("d", input="src/in.parquet", output="t/d.parquet", run=data.sort("v", descending=True))
''', rows)
    assert [r["n"] for r in project.read("t/s.parquet")] == [1, 4, 3, 0, 2]
    assert [r["n"] for r in project.read("t/d.parquet")] == [2, 3, 1, 4, 0]
    assert project.read("t/s.parquet")[0] == {"k": "a", "v": 2, "n": 1}


def test_dedupe_keeps_first(project):
    rows = [{"q": "x", "a": 1, "tags": [1]}, {"q": "y", "a": 1, "tags": [2]}, {"q": "x", "a": 2, "tags": [1]},
            {"q": "x", "a": 1, "tags": [1]}, {"q": None, "a": 5, "tags": []}, {"q": None, "a": 6, "tags": []}]
    build(project, '''
rule("whole", input="src/in.parquet", output="t/all.parquet", run=data.dedupe())
rule("q", input="src/in.parquet", output="t/q.parquet", run=data.dedupe(columns=["q"]))
rule("tags", input="src/in.parquet", output="t/tags.parquet", run=data.dedupe("tags"))
''', rows)
    assert project.read("t/all.parquet") == [rows[0], rows[1], rows[2], rows[4], rows[5]]
    assert project.read("t/q.parquet") == [rows[0], rows[1], rows[4]]
    assert project.read("t/tags.parquet") == [rows[0], rows[1], rows[4]]


# -- splits --------------------------------------------------------------------------------------------------
SPLIT_OUT = '{"train": "t/train.parquet", "validation": "t/val.parquet", "test": "t/test.parquet"}'


def test_splits_by_fraction_shuffled(project):
    build(project, f'rule("sp", input="src/in.parquet", output={SPLIT_OUT},'
                   ' run=data.splits(train=0.6, validation=0.2, test=0.2, seed=0))\n')
    order = [1, 6, 0, 7, 4, 3, 9, 8, 5, 2]  # the seed-0 permutation of 10 rows (see the shuffle test)
    assert [r["id"] for r in project.read("t/train.parquet")] == order[:6]
    assert [r["id"] for r in project.read("t/val.parquet")] == order[6:8]
    assert [r["id"] for r in project.read("t/test.parquet")] == order[8:]
    assert project.read("t/val.parquet") == [ROWS[9], ROWS[8]]


def test_splits_by_count_in_order_with_rest(project):
    build(project, f'rule("sp", input="src/in.parquet", output={SPLIT_OUT},'
                   ' run=data.splits(test=2, validation=3, train=None, shuffle=False))\n')
    assert project.read("t/test.parquet") == ROWS[:2]
    assert project.read("t/val.parquet") == ROWS[2:5]
    assert project.read("t/train.parquet") == ROWS[5:]


def test_splits_rounding_uses_every_row(project):
    build(project, 'rule("sp", input="src/in.parquet", output={"a": "t/a.parquet", "b": "t/b.parquet"},'
                   ' run=data.splits(a=0.33, b=0.67, shuffle=False))\n', ROWS[:7])
    assert project.read("t/a.parquet") == ROWS[:2]
    assert project.read("t/b.parquet") == ROWS[2:7]


def test_split_names_must_match_outputs(project):
    out = build(project, 'rule("sp", input="src/in.parquet", output={"train": "t/a.parquet", "test": "t/b.parquet"},'
                         ' run=data.splits(train=0.9, validation=0.1))\n', code=2)
    assert ("Dreamfile:2: rule 'sp': rules.splits() makes splits 'train', 'validation', but the rule's output= has"
            " 'train', 'test'") in out
    project.dreamfile(HEADER + 'rule("sp", input="src/in.parquet", output=["t/a.parquet", "t/b.parquet"],'
                               ' run=data.splits(train=0.5, test=0.5))\n')
    assert "but the rule's output= has unnamed outputs" in project.run(code=2)


def test_split_sizes_are_checked(project):
    out = build(project, 'rule("sp", input="src/in.parquet", output={"a": "t/a.parquet", "b": "t/b.parquet"},'
                         ' run=data.splits(a=0.8, b=0.5))\n', code=2)
    assert "Dreamfile:2: ValueError: splits(): the fractions add up to 1.3, more than 1" in out
    project.dreamfile(HEADER + 'rule("sp", input="src/in.parquet", output={"a": "t/a.parquet", "b": "t/b.parquet"},'
                               ' run=data.splits(a=8, b=5))\n')
    assert "rule 'sp': splits: a=8, b=5 asks for 13 rows, but the input has 10" in project.run(code=2)
    project.dreamfile(HEADER + 'rule("sp", input="src/in.parquet", output={"a": "t/a.parquet", "b": "t/b.parquet"},'
                               ' run=data.splits(a=8, b=0.5))\n')
    assert "give all sizes as fractions (0.9) or all as row counts (900)" in project.run(code=2)


# -- several inputs ------------------------------------------------------------------------------------------
def test_concat_reorders_columns(project):
    put(project, "src/a.parquet", [{"x": 1, "y": "a"}])
    put(project, "src/b.parquet", [{"y": "b", "x": 2}, {"y": "c", "x": 3}])
    project.dreamfile(HEADER + 'rule("c", input=["src/a.parquet", "src/b.parquet"], output="t/c.parquet",'
                               ' run=data.concat())\n')
    project.run()
    assert project.read("t/c.parquet") == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}]


def test_concat_type_mismatch(project):
    put(project, "src/a.parquet", [{"x": 1}])
    put(project, "src/b.parquet", [{"x": "one"}])
    project.dreamfile(HEADER + 'rule("c", input=["src/a.parquet", "src/b.parquet"], output="t/c.parquet",'
                               ' run=data.concat())\n')
    assert "rule 'c': concat: column 'x' is string in src/b.parquet but int64 in src/a.parquet" in project.run(code=2)


def test_zip_side_by_side_across_batch_boundaries(project):
    n = 1000
    put(project, "src/a.parquet", pa.table({"i": list(range(n))}), row_group_size=300)
    put(project, "src/b.parquet", pa.table({"j": [-i for i in range(n)], "s": [str(i) for i in range(n)]}),
        row_group_size=170)
    project.dreamfile(HEADER + 'rule("z", input={"left": "src/a.parquet", "right": "src/b.parquet"},'
                               ' output="t/z.parquet", run=data.zip())\n')
    project.run()
    rows = project.read("t/z.parquet")
    assert rows == [{"i": i, "j": -i, "s": str(i)} for i in range(n)]


def test_zip_errors(project):
    put(project, "src/a.parquet", [{"x": 1}, {"x": 2}])
    put(project, "src/b.parquet", [{"y": 1}])
    put(project, "src/c.parquet", [{"x": 5}, {"x": 6}])
    project.dreamfile(HEADER + 'rule("z", input=["src/a.parquet", "src/b.parquet"], output="t/z.parquet",'
                               ' run=data.zip())\n')
    out = project.run(code=2)
    assert ("rule 'z': zip: the inputs have different numbers of rows (src/a.parquet has 2, src/b.parquet has 1)"
            in out)
    project.dreamfile(HEADER + 'rule("z", input=["src/a.parquet", "src/c.parquet"], output="t/z.parquet",'
                               ' run=data.zip())\n')
    assert "rule 'z': zip: column 'x' is in both src/a.parquet and src/c.parquet" in project.run(code=2)


def test_chain_of_data_rules_and_param_change(project):
    build(project, '''
rule("f", input="src/in.parquet", output="t/f.parquet", run=data.filter(lambda row: row["id"] % 2 == 0))
rule("s", input="t/f.parquet", output="t/s.parquet", run=data.sort("word", descending=True))
rule("h", input="t/s.parquet", output="t/h.parquet", run=data.take(config.get("n", 2)))
''')
    assert project.read("t/h.parquet") == [{"id": 8, "word": "ibis"}, {"id": 6, "word": "gnu"}]
    assert project.plan("--config", "n=3") == {"h": "params"}
