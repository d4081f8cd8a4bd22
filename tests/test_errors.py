"""Bad input gives one clear line naming the Dreamfile line or rule, and exit code 2."""

from __future__ import annotations


def test_syntax_error_names_line(project):
    project.dreamfile("rule('a', output='x.parquet', run=lambda: [])\nrule('b' output='y')\n")
    out = project.run(code=2)
    assert "Dreamfile:2: syntax error" in out
    assert "Traceback" not in out


def test_exception_in_dreamfile_names_line(project):
    project.dreamfile("x = 1\ny = config['missing']\n")
    out = project.run(code=2)
    assert "Dreamfile:2: KeyError" in out


def test_duplicate_outputs(project):
    project.dreamfile("""
    rule("a", output="t/x.parquet", run=lambda: [])
    rule("b", output="t/x.parquet", run=lambda: [])
    """)
    out = project.run(code=2)
    assert "two rules make t/x.parquet: 'a' (Dreamfile:2) and 'b'" in out


def test_duplicate_rule_names(project):
    project.dreamfile("""
    rule("a", output="t/x.parquet", run=lambda: [])
    rule("a", output="t/y.parquet", run=lambda: [])
    """)
    assert "Dreamfile:3: rule 'a' is defined twice" in project.run(code=2)


def test_cycle_is_printed(project):
    project.dreamfile("""
    rule("a", input="t/c.parquet", output="t/a.parquet", run=lambda input: input)
    rule("b", input="t/a.parquet", output="t/b.parquet", run=lambda input: input)
    rule("c", input="t/b.parquet", output="t/c.parquet", run=lambda input: input)
    """)
    out = project.run("t/a.parquet", code=2)
    assert "cycle:" in out
    assert "a -> c -> b -> a" in out


def test_missing_source(project):
    project.dreamfile("""
    rule("a", input="data/nope.csv", output="t/a.parquet", run=lambda input: [])
    """)
    out = project.run(code=2)
    assert "Dreamfile:2: rule 'a' needs data/nope.csv, which does not exist" in out


def test_ambiguous_wildcards(project):
    project.dreamfile("""
    rule("a", output="t/{x}.parquet", run=lambda: [])
    rule("b", output="t/{y}.parquet", run=lambda: [])
    """)
    out = project.run("t/q.parquet", code=2)
    assert "matches the outputs of several rules" in out


def test_bad_return_type(project):
    project.dreamfile("""
    rule("a", output="t/a.parquet", run=lambda: 42)
    """)
    out = project.run(code=2)
    assert "rule 'a' failed" in out and "cannot turn a int into a table" in out


def test_unknown_function_argument(project):
    project.dreamfile("""
    def f(rows):
        return rows
    rule("a", input="d.csv", output="t/a.parquet", run=f)
    """)
    project.write("d.csv", "x\n1\n")
    out = project.run(code=2)
    assert "f() does not accept input" in out


def test_no_dreamfile(project):
    out = project.run(code=2)
    assert "no Dreamfile at Dreamfile" in out


def test_bad_config_syntax(project):
    project.dreamfile("rule('a', output='t.parquet', run=lambda: [])\n")
    assert "--config expects KEY=VALUE" in project.run("--config", "oops", code=2)


def test_a_mistyped_force_target_is_an_error(project):
    project.dreamfile("""
    rule("a", output="t/a.parquet", run=lambda: [{"x": 1}])
    """)
    out = project.run("--force", "t/aa.parquet", code=2)
    assert "--force t/aa.parquet: not an output of the jobs to build (did you mean t/a.parquet?)" in out
    assert not (project.root / "t" / "a.parquet").exists()
