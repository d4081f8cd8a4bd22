"""The resolver: exact and wildcard producers, topological order, cycles, duplicate and ambiguous producers."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fakes import dreamfile, resolve

from dreammake.errors import DreamError
from dreammake.graph import Resolver, default_targets

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder

RULES = """
def f(input, output): pass

rule("raw", output="data/raw.txt", run=f)
rule("split", input="data/raw.txt", output="data/{part}.txt", run=f)
rule("train", input=["data/train.txt", "data/test.txt", "vocab.txt"], output="model.txt", run=f)
rule("all", input=["model.txt"])
"""


def test_jobs_come_upstream_first_with_wildcards_filled(project_dir: Path) -> None:
    graph = resolve(dreamfile(project_dir, RULES))
    names = [j.name for j in graph.jobs]
    assert names == ["raw", "split[part=train]", "split[part=test]", "train", "all"]
    train = graph.jobs[3]
    assert [d.name for d in train.deps] == ["split[part=train]", "split[part=test]"]
    assert graph.producer["data/test.txt"] is graph.jobs[2]
    assert list(graph.sources) == ["vocab.txt"]
    assert [j.name for j in graph.requested] == ["all"]


def test_default_targets_are_all_else_the_final_outputs(project_dir: Path) -> None:
    assert default_targets(dreamfile(project_dir, RULES)) == ["all"]
    no_all = RULES.replace('rule("all", input=["model.txt"])\n', "")
    assert default_targets(dreamfile(project_dir, no_all)) == ["model.txt"]


def test_until_keeps_a_rule_and_what_it_needs(project_dir: Path) -> None:
    graph = resolve(dreamfile(project_dir, RULES)).until("split")
    assert [j.name for j in graph.jobs] == ["raw", "split[part=train]", "split[part=test]"]
    with pytest.raises(DreamError, match="did you mean split"):
        resolve(dreamfile(project_dir, RULES)).until("splt")


def test_a_cycle_is_named(project_dir: Path) -> None:
    wf = dreamfile(project_dir, """
        def f(input, output): pass
        rule("a", input="c.txt", output="a.txt", run=f)
        rule("b", input="a.txt", output="b.txt", run=f)
        rule("c", input="b.txt", output="c.txt", run=f)
    """)
    with pytest.raises(DreamError, match="cycle: c -> b -> a -> c"):
        resolve(wf, ["c.txt"])


def test_two_rules_making_one_path_are_an_error(project_dir: Path) -> None:
    wf = dreamfile(project_dir, """
        def f(input, output): pass
        rule("a", output="x.txt", run=f)
        rule("b", output="x.txt", run=f)
    """)
    with pytest.raises(DreamError, match="two rules make x.txt: 'a'"):
        Resolver(wf)


def test_ambiguous_wildcards_are_an_error_and_a_regex_settles_them(project_dir: Path) -> None:
    text = """
        def f(input, output): pass
        rule("a", output="out/{name,A}.txt", run=f)
        rule("b", output="out/{name,B}.txt", run=f)
    """
    with pytest.raises(DreamError, match="matches the outputs of several rules"):
        resolve(dreamfile(project_dir, text.replace("A", "[a-z]+").replace("B", ".+")), ["out/x.txt"])
    graph = resolve(dreamfile(project_dir, text.replace("A", "[a-z]+").replace("B", "[0-9]+")),
                    ["out/x.txt", "out/12.txt"])
    assert [(j.rule.name, j.wildcards) for j in graph.jobs] == [("a", {"name": "x"}), ("b", {"name": "12"})]


def test_a_repeated_wildcard_must_match_the_same_value(project_dir: Path) -> None:
    wf = dreamfile(project_dir, """
        def f(input, output): pass
        rule("a", output="{x}/{x}.txt", run=f)
    """)
    assert resolve(wf, ["s/s.txt"]).jobs[0].wildcards == {"x": "s"}
    with pytest.raises(DreamError, match="no rule makes s/t.txt"):
        resolve(wf, ["s/t.txt"])


def test_an_unknown_target_suggests_a_close_one(project_dir: Path) -> None:
    wf = dreamfile(project_dir, RULES)
    with pytest.raises(DreamError) as err:
        resolve(wf, ["modle.txt"])
    assert err.value.hint == "did you mean model.txt?"


def test_a_shared_dependency_is_one_job(project_dir: Path) -> None:
    wf = dreamfile(project_dir, """
        def f(input, output): pass
        rule("base", output="base.txt", run=f)
        rule("l", input="base.txt", output="l.txt", run=f)
        rule("r", input="base.txt", output="r.txt", run=f)
        rule("top", input=["l.txt", "r.txt", "base.txt"], output="top.txt", run=f)
    """)
    graph = resolve(wf, ["top.txt"])
    assert [j.name for j in graph.jobs] == ["base", "l", "r", "top"]
    assert [d.name for d in graph.jobs[3].deps] == ["l", "r", "base"]
