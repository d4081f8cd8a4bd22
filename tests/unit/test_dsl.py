"""The Dreamfile language: rule shapes, errors at the declaring line, config overrides, includes."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fakes import dreamfile

from dreammake.errors import DreamError

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder


def test_rule_shapes(project_dir: Path) -> None:
    wf = dreamfile(project_dir, """
        def f(**kw): pass
        rule("one", input="./a//b.txt", output="out/x.txt", run=f)
        rule("many", input=["a.txt", "b.txt"], output={"m": "out/m/", "n": "out/n.txt"}, run=f)
        rule("wild", input="in/{k}.txt", output="out/{k,[a-z]+}.txt", run=f, params={"p": 1}, resources={"gpus": 1})
        rule("all", input=["out/x.txt"])
    """)
    one, many, wild, agg = wf.rules
    assert (one.inputs, one.input_shape, one.outputs, one.output_shape) == (
        ((None, "a/b.txt"),), "single", ((None, "out/x.txt"),), "single")
    assert many.input_shape == "list" and many.output_shape == "dict"
    assert many.outputs == (("m", "out/m"), ("n", "out/n.txt")) and many.folders == frozenset({0})
    assert wild.wildcard_outputs and wild.params == {"p": 1} and wild.resources == {"gpus": 1}
    assert agg.is_phony and not one.is_phony
    assert one.where == "Dreamfile:3"
    assert wf.by_name["many"] is many


@pytest.mark.parametrize("line, message", [
    ('rule("a", output="x.txt")', "declares outputs but no run= action"),
    ('rule("a", input="x.txt", run=f)', "has a run= action but no output="),
    ('rule("a", output="x.txt", run=f)\nrule("a", output="y.txt", run=f)', "defined twice"),
    ('rule("a b", output="x.txt", run=f)', "identifier-like"),
    ('rule("a", input="{w}.txt", output="x.txt", run=f)', "wildcards that no output defines"),
    ('rule("a", output=3, run=f)', "output= must be a path, a list or a dict"),
    ('rule("a", output="../x.txt", run=f)', "outside"),
    ('rule("a", output="x.txt", run=42)', "run= must be a function"),
])
def test_bad_rules_fail_at_their_line(project_dir: Path, line: str, message: str) -> None:
    with pytest.raises(DreamError, match=message) as err:
        dreamfile(project_dir, "def f(output): pass\n" + line + "\n")
    assert err.value.where is not None and err.value.where.startswith("Dreamfile:")


def test_command_line_config_wins_over_the_dreamfile(project_dir: Path) -> None:
    text = """
        config["n"] = 1
        config.update({"m": 2, "k": 3})
        rule("all", input=[f"x{config['n']}{config['m']}{config['k']}.txt"])
    """
    assert dreamfile(project_dir, text).rules[0].inputs == ((None, "x123.txt"),)
    wf = dreamfile(project_dir, text, {"n": 7, "k": 9})
    assert wf.rules[0].inputs == ((None, "x729.txt"),)
    assert dict(wf.config) == {"n": 7, "m": 2, "k": 9}


def test_include_and_expand(project_dir: Path) -> None:
    (project_dir / "more.dream").write_text('rule("all", input=expand("d/{s}-{n}.txt", s=["a", "b"], n=1))\n')
    wf = dreamfile(project_dir, 'include("more.dream")\n')
    assert [p for _, p in wf.rules[0].inputs] == ["d/a-1.txt", "d/b-1.txt"]
    assert wf.files == ["Dreamfile", "more.dream"]


def test_an_error_inside_the_dreamfile_points_at_its_line(project_dir: Path) -> None:
    with pytest.raises(DreamError, match="ZeroDivisionError") as err:
        dreamfile(project_dir, "x = 1\ny = 1 / 0\n")
    assert err.value.where == "Dreamfile:2"
