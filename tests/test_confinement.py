"""Outputs are confined to the project folder: no rule may write, and `clean` may never remove, anything else."""

from __future__ import annotations

import os

import pytest

WRITE_NOTHING = """
def g(output):
    pass

rule("up", output={out!r}, run=g)
"""


@pytest.fixture
def layout(tmp_path, project):
    """A project folder beside a folder of the user's that must survive everything."""
    outside = tmp_path / "victimdir"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (tmp_path / "victim.parquet").write_text("not a parquet file, but the user's")
    proj = tmp_path / "proj"
    proj.mkdir()
    return type(project)(proj), tmp_path


def _snapshot(root) -> dict[str, bytes]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if "/proj/" not in path + "/":
                with open(path, "rb") as f:
                    out[path] = f.read()
    return out


@pytest.mark.parametrize("out", ["../", "..", "../victim.parquet", "../victimdir/", "../victimdir/x.parquet",
                                 "ABS/victim.parquet", "proj/../../victim.parquet", ".", "./",
                                 ".dreammake/state.duckdb", ".dreammake/", "sub/../.dreammake/x.parquet"])
@pytest.mark.parametrize("command", [(), ("all",), ("clean",), ("-n",), ("status",)])
def test_an_output_outside_the_project_is_refused(layout, out, command):
    project, parent = layout
    out = out.replace("ABS", str(parent))
    before = _snapshot(parent)
    project.dreamfile(WRITE_NOTHING.format(out=out))
    text = project.run(*command, code=2)
    assert "Dreamfile:5: rule 'up': output" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert _snapshot(parent) == before
    assert (parent / "victimdir" / "precious.txt").read_text() == "keep me"
    assert (project.root / "Dreamfile").exists()


def test_a_symlinked_folder_that_points_outside_is_refused(layout):
    project, parent = layout
    os.symlink(parent / "victimdir", project.root / "linked")
    project.dreamfile("rule('up', output='linked/precious.txt', run=lambda: [])\n")
    for command in ("all", "clean"):
        text = project.run(command, code=2)
        assert "resolves to" in text and "outside the project folder" in text
    assert (parent / "victimdir" / "precious.txt").read_text() == "keep me"


def test_a_wildcard_filled_with_a_path_outside_is_refused(layout):
    project, parent = layout
    project.dreamfile("""
    rule("src", output="{name}.parquet", run=lambda wildcards: [{"name": wildcards["name"]}])
    """)
    for request in ("../victim.parquet", str(parent / "victim.parquet")):
        text = project.run(request, code=2)
        assert "outside the project folder" in text
    assert (parent / "victim.parquet").read_text() == "not a parquet file, but the user's"
    project.run("data/ok.parquet")
    assert project.read("data/ok.parquet") == [{"name": "data/ok"}]


def test_an_absolute_output_inside_the_project_is_the_same_target(layout):
    project, _ = layout
    project.dreamfile(f"""
    rule("a", output={str(project.root / "t" / "a.parquet")!r}, run=lambda: [{{"x": 1}}])
    rule("b", input="t/a.parquet", output="t/b.parquet", run=lambda input: input)
    """)
    project.run("t/b.parquet")
    assert project.read("t/a.parquet") == [{"x": 1}]
    assert project.run("-n").strip().endswith("0 job(s) to run, 2 up to date")


def test_clean_removes_only_what_dreammake_built(layout):
    project, _ = layout
    project.dreamfile("""
    rule("a", output="t/a.parquet", run=lambda: [{"x": 1}])
    def write(output):
        open(output, "w").write("built")
    rule("b", output="t/b.txt", run=write)
    rule("c", output="t/c.parquet", run=lambda: [{"x": 2}])
    """)
    project.run("t/a.parquet", "t/b.txt")
    (project.root / "t" / "c.parquet").write_text("the user's own file at an output path")
    out = project.run("clean")
    assert "kept t/c.parquet: dreammake did not build it" in out
    assert not (project.root / "t" / "a.parquet").exists()
    assert not (project.root / "t" / "a.README.md").exists()
    assert not (project.root / "t" / "b.txt").exists()
    assert (project.root / "t" / "c.parquet").read_text() == "the user's own file at an output path"
    assert "0 output(s) removed" in project.run("clean")
