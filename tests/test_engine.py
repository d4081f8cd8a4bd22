"""The build engine end to end: rebuild reasons, early cutoff, wildcards, config, errors."""

from __future__ import annotations

import json
import os
import time

CHAIN = """
import pyarrow.csv as pacsv

def read(input):
    return pacsv.read_csv(input)

def shout(input, params):
    return {"text": [t.upper() + params["suffix"] for t in input["text"]]}

def count(input):
    return [{"n": len(input)}]

rule("raw", input="data/raw.csv", output="targets/raw.parquet", run=read)
rule("shout", input="targets/raw.parquet", output="targets/shout.parquet", run=shout,
     params={"suffix": config.get("suffix", "!")})
rule("count", input={"rows": "targets/shout.parquet"}, output="targets/count.parquet",
     run=lambda rows: [{"n": len(rows)}])
rule("all", input=["targets/count.parquet"])
"""


def make_chain(project):
    project.write("data/raw.csv", "text\nhello\nbye\n")
    project.dreamfile(CHAIN)


def test_first_build_then_up_to_date(project):
    make_chain(project)
    assert project.plan() == {"raw": "missing", "shout": "missing", "count": "missing"}
    out = project.run()
    assert "3 job(s) run" in out
    assert project.read("targets/shout.parquet") == [{"text": "HELLO!"}, {"text": "BYE!"}]
    assert project.read("targets/count.parquet") == [{"n": 2}]
    assert project.plan() == {}
    assert "up to date" in project.run()


def test_question_exit_codes(project):
    make_chain(project)
    project.run("-q", code=1)
    project.run()
    project.run("-q", code=0)
    project.write("data/raw.csv", "text\nhello\n")
    project.run("-q", code=1)
    project.run("-q", "nonexistent.parquet", code=2)


def test_params_change_via_config(project):
    make_chain(project)
    project.run()
    assert project.plan("--config", "suffix=?") == {"shout": "params", "count": "input"}
    project.run("--config", "suffix=?")
    assert project.read("targets/shout.parquet")[0] == {"text": "HELLO?"}


def test_code_change_but_not_cosmetic_edit(project):
    make_chain(project)
    project.run()
    text = (project.root / "Dreamfile").read_text()
    project.dreamfile(text.replace("def shout(input, params):", "def shout(input, params):\n    # a comment\n"))
    assert project.plan() == {}, "comments and blank lines must not trigger a rebuild"
    project.dreamfile(text.replace("t.upper()", "t.lower()"))
    assert project.plan() == {"shout": "code", "count": "input"}


def test_source_content_change_and_touch(project):
    make_chain(project)
    project.run()
    raw = project.root / "data/raw.csv"
    os.utime(raw, (time.time() + 10, time.time() + 10))
    assert project.plan() == {}, "touching a source without changing it must not rebuild"
    raw.write_text("text\nhello\nbye\nagain\n")
    assert project.plan() == {"raw": "input", "shout": "input", "count": "input"}


def test_early_cutoff_keeps_file_and_stops_dependants(project):
    make_chain(project)
    project.run()
    count = project.root / "targets/count.parquet"
    shout = project.root / "targets/shout.parquet"
    before = (count.stat().st_mtime_ns, shout.stat().st_mtime_ns)
    # same rows, different bytes in the CSV: raw reruns, its table is identical
    (project.root / "data/raw.csv").write_text("text\r\nhello\r\nbye\r\n")
    out = project.run()
    assert "run raw" in out
    assert "run shout" not in out and "run count" not in out
    assert "unchanged shout" in out
    assert (count.stat().st_mtime_ns, shout.stat().st_mtime_ns) == before
    assert project.plan() == {}


def test_hand_modified_output_is_rebuilt(project):
    make_chain(project)
    project.run()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["tampered"]}), project.root / "targets/shout.parquet")
    assert project.plan() == {"shout": "modified", "count": "input"}
    project.run()
    assert project.read("targets/shout.parquet") == [{"text": "HELLO!"}, {"text": "BYE!"}]


def test_missing_output_and_force(project):
    make_chain(project)
    project.run()
    os.remove(project.root / "targets/count.parquet")
    assert project.plan() == {"count": "missing"}
    project.run()
    assert project.plan("--force", "targets/shout.parquet") == {"shout": "forced", "count": "input"}
    assert set(project.plan("-F")) == {"raw", "shout", "count"}
    assert set(project.plan("-F", "--until", "shout")) == {"raw", "shout"}


def test_untracked_output_is_rebuilt(project):
    make_chain(project)
    (project.root / "targets").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    project.run("targets/raw.parquet")
    pq.write_table(pa.table({"text": ["x"]}), project.root / "targets/shout.parquet")
    assert project.plan()["shout"] == "missing" or project.plan()["shout"] == "untracked"


def test_wildcards_and_named_outputs(project):
    project.dreamfile("""
    def make(wildcards):
        return {"split": [wildcards["split"]] * int(wildcards["n"])}

    def two(input):
        return {"big": [r for r in input.to_list() if len(r["split"]) > 4],
                "small": [r for r in input.to_list() if len(r["split"]) <= 4]}

    rule("make", output="targets/{split}-{n,[0-9]+}.parquet", run=make)
    rule("both", input="targets/train-3.parquet", output={"big": "targets/big.parquet",
         "small": "targets/small.parquet"}, run=two)
    rule("all", input=expand("targets/{s}-2.parquet", s=["test", "valid"]) + ["targets/big.parquet"])
    """)
    out = project.run()
    assert "make[split=test,n=2]" in out
    assert project.read("targets/valid-2.parquet") == [{"split": "valid"}] * 2
    assert project.read("targets/big.parquet") == [{"split": "train"}] * 3
    assert project.read("targets/small.parquet") == []  # an empty table keeps no schema guess
    project.run("targets/x-5.parquet")
    assert len(project.read("targets/x-5.parquet")) == 5
    out = project.run("targets/x-y.parquet", code=2)
    assert "no rule makes targets/x-y.parquet" in out


def test_user_function_return_types_and_output_param(project):
    project.dreamfile("""
    import pandas as pd
    import pyarrow as pa

    def as_pandas():
        return pd.DataFrame({"a": [1, 2]})

    def as_arrow(input):
        return pa.table({"a": [x * 10 for x in input["a"]]})

    def as_dataset(input):
        return input.map(lambda r: {"a": r["a"] + 1})

    def folder(input, output):
        import os
        with open(os.path.join(output, "weights.txt"), "w") as f:
            f.write(str(sum(input["a"])))

    rule("pandas", output="t/p.parquet", run=as_pandas)
    rule("arrow", input="t/p.parquet", output="t/a.parquet", run=as_arrow)
    rule("ds", input="t/a.parquet", output="t/d.parquet", run=as_dataset)
    rule("ckpt", input="t/d.parquet", output="models/m/", run=folder)
    """)
    project.run()
    assert project.read("t/d.parquet") == [{"a": 11}, {"a": 21}]
    assert (project.root / "models/m/weights.txt").read_text() == "32"
    assert project.plan() == {}
    (project.root / "models/m/weights.txt").write_text("0")
    assert project.plan() == {"ckpt": "modified"}


def test_parquet_metadata(project):
    make_chain(project)
    project.run()
    import pyarrow.parquet as pq

    meta = pq.read_schema(project.root / "targets/shout.parquet").metadata
    assert meta[b"dreammake.rule"] == b"shout"
    assert len(meta[b"dreammake.fingerprint"]) == 32


def test_status_json(project):
    make_chain(project)
    project.run("targets/shout.parquet")
    data = json.loads(project.run("status", "--json"))
    states = {t["target"]: t["state"] for t in data["targets"]}
    assert states == {"targets/raw.parquet": "up-to-date", "targets/shout.parquet": "up-to-date",
                      "targets/count.parquet": "missing"}
    shout = next(t for t in data["targets"] if t["target"] == "targets/shout.parquet")
    assert shout["rows"] == 2 and shout["rule"] == "shout" and shout["built_at"]


def test_clean(project):
    make_chain(project)
    project.run()
    out = project.run("clean")
    assert "3 output(s) removed" in out
    assert not (project.root / "targets/raw.parquet").exists()
    assert (project.root / "data/raw.csv").exists()


def test_keep_going_and_failure_exit_code(project):
    project.dreamfile("""
    def boom():
        raise ValueError("bad row")

    rule("bad", output="t/bad.parquet", run=boom)
    rule("after", input="t/bad.parquet", output="t/after.parquet", run=lambda input: input)
    rule("good", output="t/good.parquet", run=lambda: [{"x": 1}])
    rule("all", input=["t/after.parquet", "t/good.parquet"])
    """)
    out = project.run("-k", code=2)
    assert "rule 'bad' failed: ValueError: bad row" in out
    assert "Dreamfile:2" in out or "Dreamfile:" in out
    assert (project.root / "t/good.parquet").exists()
    assert not (project.root / "t/after.parquet").exists()
    assert "1 not run because of failures" in out


def test_options_before_a_command_name(project):
    make_chain(project)
    project.run()
    assert "up-to-date" in project.run("-f", "Dreamfile", "status")
    assert "data/raw.csv" in project.run("--config", "suffix=!", "graph", "--format", "mermaid")


def test_scratch_folder_only_for_jobs_that_use_it(project):
    """`ctx.work_dir` appears on first use, survives a rerun with the same fingerprint, is wiped on a change."""
    import threading

    from dreammake.actions import JobContext

    make_chain(project)
    project.run()
    assert not (project.root / ".dreammake/work").exists(), "user functions never asked for scratch space"

    folder = project.root / ".dreammake/work/train-x"
    first = JobContext(None, {}, str(folder), threading.Event(), "fp1")
    assert not folder.exists()
    (folder.parent / "unrelated").mkdir(parents=True)
    with open(os.path.join(first.work_dir, "checkpoint"), "w") as f:
        f.write("step 10")
    rerun = JobContext(None, {}, str(folder), threading.Event(), "fp1")
    assert open(os.path.join(rerun.work_dir, "checkpoint")).read() == "step 10"
    changed = JobContext(None, {}, str(folder), threading.Event(), "fp2")
    assert os.listdir(changed.work_dir) == ["FINGERPRINT"]
    assert (folder.parent / "unrelated").exists()


def test_stale_temps_of_several_targets_in_one_folder_are_removed(project):
    make_chain(project)
    project.run()
    stale = [project.root / "targets" / f".{name}.dmtmp-99999-deadbeef" for name in ("raw.parquet", "shout.parquet")]
    for path in stale:
        path.write_bytes(b"left by a killed run")
    keep = project.root / "targets" / ".other.parquet.dmtmp-99999-deadbeef"
    keep.write_bytes(b"not ours to remove")
    project.run("-F")
    assert not any(path.exists() for path in stale)
    assert keep.exists(), "temps of targets that did not run stay"
