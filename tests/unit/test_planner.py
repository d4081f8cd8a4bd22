"""Planner decisions (every reason code) and early cutoff, on a dict-backed state: build with the real runner and
local executor, change one thing, plan again."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_fakes import FakeState, build, dreamfile, plan, reasons

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder

PIPELINE = """
def upper(input, output):
    with open(input) as f, open(output, "w") as out:
        out.write(f.read().upper())

def first_word(input, output):
    with open(input) as f, open(output, "w") as out:
        out.write(f.read().split()[0])

def count(input, output, params):
    with open(input) as f, open(output, "w") as out:
        out.write(str(len(f.read())) + params["suffix"])

rule("up", input="src.txt", output="out/up.txt", run=upper)
rule("word", input="out/up.txt", output="out/word.txt", run=first_word)
rule("count", input="out/word.txt", output="out/count.txt", run=count, params={"suffix": SUFFIX})
"""


def pipeline(root: Path, suffix: str = "!", body: str = PIPELINE):
    return dreamfile(root, f"SUFFIX = {suffix!r}\n" + body)


def built(root: Path, text: str = "hello world") -> FakeState:
    (root / "src.txt").write_text(text)
    state = FakeState()
    summary = build(root, pipeline(root), state)
    assert summary.ran == ["up", "word", "count"] and not summary.failed
    return state


def test_a_first_plan_says_missing_then_the_build_is_up_to_date(project_dir: Path) -> None:
    (project_dir / "src.txt").write_text("hello world")
    state = FakeState()
    assert reasons(pipeline(project_dir), state) == {"up": "missing", "word": "missing", "count": "missing"}
    build(project_dir, pipeline(project_dir), state)
    assert (project_dir / "out/count.txt").read_text() == "5!"
    assert reasons(pipeline(project_dir), state) == {"up": None, "word": None, "count": None}
    assert set(state.saved) == {"out/up.txt", "out/word.txt", "out/count.txt"}


def test_an_output_not_built_by_dreammake_is_untracked(project_dir: Path) -> None:
    state = built(project_dir)
    del state.rows["out/word.txt"]
    assert reasons(pipeline(project_dir), state)["word"] == "untracked"


def test_an_output_edited_by_hand_is_modified(project_dir: Path) -> None:
    state = built(project_dir)
    (project_dir / "out/word.txt").write_text("EDITED")
    _, decisions = plan(pipeline(project_dir), state)
    assert decisions["word"].reason == "modified"
    assert decisions["word"].detail == "out/word.txt was changed by hand"
    assert decisions["count"].reason == "input"  # it will be rebuilt from the rebuilt word


def test_a_changed_param_names_its_key(project_dir: Path) -> None:
    state = built(project_dir)
    _, decisions = plan(pipeline(project_dir, suffix="?"), state)
    assert (decisions["count"].reason, decisions["count"].detail) == ("params", "params.suffix changed")
    assert decisions["up"].reason is None


def test_changed_code_is_code_but_a_comment_is_not(project_dir: Path) -> None:
    state = built(project_dir)
    commented = PIPELINE.replace("out.write(f.read().upper())", "out.write(f.read().upper())  # shout")
    assert reasons(pipeline(project_dir, body=commented), state)["up"] is None
    changed = PIPELINE.replace("f.read().upper()", "f.read().lower()")
    assert reasons(pipeline(project_dir, body=changed), state) == {"up": "code", "word": "input", "count": "input"}


def test_a_changed_source_is_input(project_dir: Path) -> None:
    state = built(project_dir)
    (project_dir / "src.txt").write_text("goodbye world")
    _, decisions = plan(pipeline(project_dir), state)
    assert (decisions["up"].reason, decisions["up"].detail) == ("input", "input src.txt changed")
    assert decisions["word"].detail == "input out/up.txt will be rebuilt"


def test_forced_outputs_rebuild(project_dir: Path) -> None:
    from engine_fakes import resolve

    from dreammake.planner import Planner

    state = built(project_dir)
    planner = Planner(resolve(pipeline(project_dir)), state, forced={"out/word.txt"})  # type: ignore[arg-type]
    assert [d.reason for d in planner.plan()] == [None, "forced", "input"]


ACTIONS = """
from dreammake.actions import Action

class Write(Action):
    kind = "write"
    version = VERSION

    def model_identity(self):
        return MODEL

    def execute(self, ctx):
        with open(ctx.outputs["0"], "w") as f:
            f.write("x")

rule("w", output="w.txt", run=Write())
"""


def test_kind_version_and_model_changes(project_dir: Path) -> None:
    state = FakeState()
    build(project_dir, dreamfile(project_dir, "VERSION = 1\nMODEL = 'm1'\n" + ACTIONS), state)
    assert reasons(dreamfile(project_dir, "VERSION = 1\nMODEL = 'm1'\n" + ACTIONS), state) == {"w": None}
    assert reasons(dreamfile(project_dir, "VERSION = 2\nMODEL = 'm1'\n" + ACTIONS), state) == {"w": "kind"}
    assert reasons(dreamfile(project_dir, "VERSION = 1\nMODEL = 'm2'\n" + ACTIONS), state) == {"w": "model"}


def test_early_cutoff_keeps_unchanged_outputs_and_skips_their_dependants(project_dir: Path) -> None:
    state = built(project_dir, "hello world")
    word = project_dir / "out/word.txt"
    mtime = word.stat().st_mtime_ns
    (project_dir / "src.txt").write_text("hello there")  # up.txt changes; its first word does not
    summary = build(project_dir, pipeline(project_dir), state)
    assert summary.ran == ["up", "word"] and summary.cut_off == ["count"]
    assert word.stat().st_mtime_ns == mtime  # same content: the old file was kept
    assert (project_dir / "out/up.txt").read_text() == "HELLO THERE"
    assert reasons(pipeline(project_dir), state) == {"up": None, "word": None, "count": None}


def test_a_failed_job_records_nothing_and_reruns(project_dir: Path) -> None:
    (project_dir / "src.txt").write_text("")  # first_word fails on an empty text
    state = FakeState()
    summary = build(project_dir, pipeline(project_dir), state, keep_going=True)
    assert summary.ran == ["up"] and [n for n, _ in summary.failed] == ["word"] and summary.skipped == ["count"]
    assert "IndexError" in summary.failed[0][1].message
    assert set(state.saved) == {"out/up.txt"}
    assert reasons(pipeline(project_dir), state) == {"up": None, "word": "missing", "count": "missing"}
