"""The open seams: a plugin package (tests/plugin_example) adds a rule kind, a backend and an executor through
entry points, with no change to dreammake; the registries behind them load lazily."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreammake.plugins import PluginError, Registry, UnknownName

TESTS = Path(__file__).resolve().parent


def install_metadata(site: Path, name: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """A minimal installed distribution `name` in `site`: the dist-info that `pip install` would write."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()) for group, points in entry_points.items()))
    return site


@pytest.fixture
def plugged(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project folder, and the environment of a Python where plugin_example is installed."""
    from plugin_example import ENTRY_POINTS

    site = install_metadata(tmp_path / "site", "plugin_example", ENTRY_POINTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    root = tmp_path / "project"
    root.mkdir()
    return root, env


def dreammake(root: Path, env: dict[str, str], *args: str, code: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "dreammake", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code, f"exit {done.returncode} != {code}\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


DREAMFILE = """\
rule("rows", output="t/rows.parquet", run=rules.rows([{"text": "hello"}, {"text": "plugins"}]))
rule("numbered", input="t/rows.parquet", output="t/numbered.parquet", run=rules.number_rows(column="i", start=1))
rule("shouted", input="t/numbered.parquet", output="t/shouted.parquet",
     run=rules.process_with_prompt(llm=llm("shout:loud", suffix="!"), instruction="Say it.", input_column="text",
                                   output_column="reply"))
"""


def test_a_plugin_adds_a_rule_kind_a_backend_and_an_executor(plugged) -> None:
    import pyarrow.parquet as pq

    root, env = plugged
    (root / "Dreamfile").write_text(DREAMFILE)
    dreammake(root, env, "--executor", "audited", "-j", "2")
    rows = pq.read_table(root / "t/shouted.parquet").to_pylist()
    assert [(r["i"], r["reply"]) for r in rows] == [(1, "SAY IT.\n\nHELLO!"), (2, "SAY IT.\n\nPLUGINS!")]
    assert sorted((root / "audit.log").read_text().splitlines()) == ["ran numbered", "ran rows", "ran shouted"]
    assert "up to date" in dreammake(root, env, "-n")  # the plugin's kind and model identities are stable
    (root / "Dreamfile").write_text(DREAMFILE.replace('suffix="!"', 'suffix="?"'))
    plan = dreammake(root, env, "-n")
    assert "shouted" in plan and "model" in plan and "numbered" not in plan  # the backend's identity counts
    card = (root / "t/shouted.README.md").read_text()
    assert "shout:loud" in card  # the model a plugin's backend serves is named on the card


@pytest.mark.parametrize(("dreamfile", "args", "message"), [
    ('rule("a", output="t/a.parquet", run=rules.number_row())\n', (),
     "Dreamfile:1: AttributeError: dreammake has no rule kind 'number_row' (did you mean number_rows?)"),
    ('rule("a", output="t/a.parquet", run=rules.number_rows(colum="i"))\n', (),
     "Dreamfile:1: TypeError: rules.number_rows() got an unknown option 'colum' (did you mean column?)"),
    ('m = llm("shout:loud", sufix="!")\n', (),
     "Dreamfile:1: TypeError: llm('shout:loud') got an option the shout backend does not take: 'sufix'"
     " (did you mean suffix?)"),
    ('m = llm("shuot:loud")\n', (),
     "Dreamfile:1: ValueError: llm('shuot:loud'): no backend has the prefix 'shuot:' (did you mean shout:?)"),
    ('rule("a", output="t/a.parquet", run=rules.rows([{"x": 1}]))\n', ("--executor", "audite"),
     "--executor: dreammake has no executor 'audite' (did you mean audited?)"),
])
def test_mistakes_with_a_plugin_fail_in_one_line_with_did_you_mean(plugged, dreamfile, args, message) -> None:
    from ux_helpers import assert_one_error_line

    root, env = plugged
    (root / "Dreamfile").write_text(dreamfile)
    assert assert_one_error_line(dreammake(root, env, *args, code=2)) == f"error: {message}"


def test_built_in_kinds_load_lazily_and_read_no_package_metadata(tmp_path: Path) -> None:
    (tmp_path / "Dreamfile").write_text('rule("a", input="in.parquet", output="t/a.parquet", run=rules.take(2))\n')
    probe = ("import sys; from dreammake.dsl import load; load('Dreamfile'); "
             "print(sorted(m for m in sys.modules if m.startswith('dreammake.rules.')), "
             "'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['dreammake.rules.data']", "False"]


def test_registry_loads_references_on_first_use_and_refuses_a_second_factory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_things.py").write_text("def thing():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    things: Registry[object] = Registry("dreammake.test_things", "thing")
    things.register("lazy", "lazy_things:thing")
    things.register("missing", "dreammake_no_such_module:thing")
    things.register("lazy", "lazy_things:thing")  # the same reference again: fine (a module imported twice)
    assert "lazy_things" not in sys.modules
    assert things.get("lazy")() == 42 and "lazy_things" in sys.modules
    with pytest.raises(ValueError, match="thing 'lazy' is already registered"):
        things.register("lazy", print)
    with pytest.raises(PluginError, match="thing 'missing' .* failed to load: ModuleNotFoundError"):
        things.get("missing")
    with pytest.raises(UnknownName, match=r"dreammake has no thing 'lazzy' \(did you mean lazy\?\)"):
        things.get("lazzy")
    with pytest.raises(UnknownName, match="; known things: lazy, missing$"):
        things.get("zzz")


def test_registry_reads_entry_points_once_and_only_when_a_name_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import json

    monkeypatch.syspath_prepend(str(install_metadata(tmp_path, "some_plugin", {
        "dreammake.test_things": {"loads": "json:loads", "dumps": "os:getcwd"}})))
    scans = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: scans.append(kw) or real(**kw))
    things: Registry[object] = Registry("dreammake.test_things", "thing")
    things.register("dumps", json.dumps)
    assert things.get("dumps") is json.dumps and scans == []  # a registered name reads no metadata
    assert things.get("loads") is json.loads  # found through the entry point
    assert things.get("dumps") is json.dumps  # a name registered in code wins over an entry point
    assert things.names() == ["dumps", "loads"] and scans == [{"group": "dreammake.test_things"}]
