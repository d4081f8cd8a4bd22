"""A user's first hour: one error path for every command, help that shows the build options, 'did you mean'
for mistyped targets and rule kinds, and a plan that names the params key that changed."""

from __future__ import annotations

import click
import pytest
from ux_helpers import assert_one_error_line

from dreammake.cli import main

GOOD = """
rule("a", output="t/a.parquet", run=lambda: [{"x": 1}, {"x": 2}])
rule("b", input="t/a.parquet", output="t/b.parquet", run=lambda input: input)
"""
BROKEN = "rule('a', output='t/a.parquet', run=lambda: [])\nrule('b' output='y')\n"
TYPO = "t/bb.parquet"  # a mistyped t/b.parquet

# Values for the required parameters of commands (by parameter name); `target`s get the target under test.
FILLERS = {"other": ".", "folder": "exported", "repo_id": "me/data"}
# Commands that never read the Dreamfile; each names a user mistake of its own instead.
NO_DREAMFILE = {("cache", "stats"): None, ("cache", "export"): None, ("cache", "import"): None,
                ("cache", "rebuild"): None, ("cache", "prune"): ["cache", "prune"]}


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every runnable command under `group`, as (name path, command)."""
    found = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            found += leaf_commands(cmd, (*path, name))
        else:
            found.append(((*path, name), cmd))
    return found


def arguments(path: tuple[str, ...], cmd: click.Command, target: str | None) -> list[str]:
    """The command line for `cmd` with the minimal arguments it needs, asking for `target` where it takes one."""
    args = list(path)
    for param in cmd.params:
        if param.name in ("target", "targets"):
            if target is not None:
                args.append(target)
        elif param.required:
            assert param.name in FILLERS, f"add a value for {param.name!r} of `{' '.join(path)}` to FILLERS"
            value = FILLERS[param.name]
            args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


COMMANDS = leaf_commands(main)


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_one_error_line(project, path, cmd):
    if path in NO_DREAMFILE:
        assert not any(p.name == "dreamfile" for p in cmd.params), path
        if NO_DREAMFILE[path] is not None:
            assert_one_error_line(project.run(*NO_DREAMFILE[path], code=2))
        return
    assert any(p.name == "dreamfile" for p in cmd.params), f"`{' '.join(path)}` takes no -f; list it in NO_DREAMFILE"
    project.dreamfile(BROKEN)
    line = assert_one_error_line(project.run(*arguments(path, cmd, "t/b.parquet"), code=2))
    assert "Dreamfile:2: syntax error" in line
    project.dreamfile(GOOD)
    line = assert_one_error_line(project.run(*arguments(path, cmd, TYPO), code=2))
    assert f"no rule makes {TYPO}" in line and "did you mean t/b.parquet?" in line


def test_usage_mistakes_are_one_line(project):
    project.dreamfile(GOOD)
    assert "Missing argument 'TARGET'" in assert_one_error_line(project.run("show", code=2))
    line = assert_one_error_line(project.run("show", "a", "--colums", "x", code=2))
    assert "No such option '--colums'. Did you mean '--columns'?" in line and "show --help`" in line
    assert "Did you mean 'stats'?" in assert_one_error_line(project.run("cache", "stat", code=2))
    assert "0 is not in the range" in assert_one_error_line(project.run("-j", "0", code=2))


def test_debug_shows_the_traceback(project):
    project.dreamfile(GOOD)
    out = project.run("graph", "--debug", TYPO, code=2)
    assert "Traceback" in out and out.rstrip().splitlines()[-1].startswith("error: no rule makes")


def test_graph_png_without_graphviz(project, monkeypatch):
    project.dreamfile(GOOD)
    monkeypatch.setenv("PATH", "/nonexistent")
    line = assert_one_error_line(project.run("graph", "--format", "png", code=2))
    assert "needs Graphviz" in line


def test_unwritable_output_is_one_line(project):
    project.dreamfile(GOOD)
    line = assert_one_error_line(project.run("graph", "-o", "no/such/folder/g.dot", code=2))
    assert "No such file or directory: no/such/folder/g.dot" in line


def test_top_level_help_shows_the_build_options(project):
    out = project.run("--help")
    for option in ("-f, --file", "-n, --dry-run", "-j, --jobs", "-k, --keep-going", "--config", "--until",
                   "--max-cost"):
        assert option in out, option
    assert out.index("Build options") < out.index("Commands:")
    assert "[OPTIONS] [TARGETS]... | COMMAND [ARGS]..." in out


def test_mistyped_rule_name_and_until(project):
    project.dreamfile(GOOD)
    assert_one_error_line(project.run("bb", code=2))
    assert "no rule makes bb — did you mean b?" in project.run("bb", code=2)
    assert "(did you mean b?)" in project.run("--until", "bb", "t/b.parquet", code=2)
    assert "check the path" in project.run("zzzzzz", code=2)  # nothing close: the general hint


def test_mistyped_rule_kind(project):
    project.dreamfile("""
    rule("a", output="t/a.parquet", run=rules.proces_with_prompt(llm=None, instruction="x", input_column="x"))
    """)
    line = assert_one_error_line(project.run(code=2))
    assert line == ("error: Dreamfile:2: AttributeError: dreammake has no rule kind 'proces_with_prompt'"
                    " (did you mean process_with_prompt?)")
    project.dreamfile('rule("a", output="t/a.parquet", run=rules.qqqqqq())\n')
    assert "known kinds: concat, " in project.run(code=2)


PARAMS = """
def make(params):
    return [{"text": params["instruction"]}] * params["n"]
rule("a", output="t/a.parquet", params={"instruction": config.get("instruction", "one"), "n": config.get("n", 3)},
     run=make)
rule("b", input="t/a.parquet", output="t/b.parquet", run=rules.take(config.get("take", 2)))
"""


def test_plan_names_the_params_keys_that_changed(project):
    project.dreamfile(PARAMS)
    project.run()
    plan = project.run("-n", "--config", "instruction=two")
    assert "a\tt/a.parquet\tparams: params.instruction changed" in plan
    assert "b\tt/b.parquet\tinput: input t/a.parquet will be rebuilt" in plan
    plan = project.run("-n", "--config", "instruction=two", "--config", "n=4")
    assert "a\tt/a.parquet\tparams: params.instruction, params.n changed" in plan
    assert "b\tt/b.parquet\tparams: params.n changed" in project.run("-n", "--config", "take=1")
    project.run("--config", "take=1")  # the new record keeps per-key hashes too
    assert "b\tt/b.parquet\tparams: params.n changed" in project.run("-n")


def test_plan_without_per_key_hashes_says_params(project):
    """A record written before per-key hashes existed (only the params hash) still gives a reason."""
    import duckdb

    project.dreamfile(PARAMS)
    project.run()
    db = duckdb.connect(str(project.root / ".dreammake/state.duckdb"))
    db.execute("UPDATE targets SET params_hash = split_part(params_hash, ' ', 1)")
    db.close()
    (project.root / ".dreammake/snapshot.marshal").unlink(missing_ok=True)
    assert "a\tt/a.parquet\tparams: params changed" in project.run("-n", "--config", "instruction=two")
