"""Source rule kinds (dreammake.rules.sources): local files, inline rows, Hugging Face datasets (offline)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HEADER = "from dreammake.rules import sources\n"


def read_rule(project, source: str, options: str = "", name: str = "raw") -> None:
    project.dreamfile(HEADER + f'rule("{name}", input="{source}", output="t/{name}.parquet",'
                               f' run=sources.read({options}))\n')


# -- read ----------------------------------------------------------------------------------------------------
def test_read_csv_and_tsv(project):
    project.write("data/a.csv", "q,n\nhello,1\n\"a, b\",2\n")
    project.write("data/b.tsv", "q\tn\nx y\t3\n")
    project.dreamfile(HEADER + '''
rule("a", input="data/a.csv", output="t/a.parquet", run=sources.read())
rule("b", input="data/b.tsv", output="t/b.parquet", run=sources.read())
''')
    project.run()
    assert project.read("t/a.parquet") == [{"q": "hello", "n": 1}, {"q": "a, b", "n": 2}]
    assert project.read("t/b.parquet") == [{"q": "x y", "n": 3}]


def test_read_csv_options_and_schema(project):
    project.write("data/a.txt", "1;007\n2;010\n")
    read_rule(project, "data/a.txt", 'format="csv", delimiter=";", column_names=["id", "code"],'
                                     ' schema={"code": "string"}')
    project.run()
    assert project.read("t/raw.parquet") == [{"id": 1, "code": "007"}, {"id": 2, "code": "010"}]


def test_read_csv_whose_types_change_after_the_first_block(project):
    """Streaming infers types from the first block; a later block that disagrees falls back to reading the
    whole file, whose types cover every row."""
    project.write("data/a.csv", "v\n" + "1\n" * 3000 + "x\n")
    read_rule(project, "data/a.csv", "block_size=1024")
    project.run()
    rows = project.read("t/raw.parquet")
    assert len(rows) == 3001 and rows[0] == {"v": "1"} and rows[-1] == {"v": "x"}


def test_read_json_lines_and_json(project):
    project.write("data/a.jsonl", '{"a": 1}\n' * 2 + '{"a": 2, "b": "new"}\n')
    project.write("data/arr.json", '[{"a": 1}, {"a": 2, "b": [1, 2]}]')
    project.write("data/obj.json", '{"version": 3, "data": [{"q": "x"}, {"q": "y"}]}')
    project.write("data/lines.json", '{"q": "one"}\n{"q": "two"}\n')
    project.dreamfile(HEADER + '''
rule("jl", input="data/a.jsonl", output="t/jl.parquet", run=sources.read(block_size=16))
rule("arr", input="data/arr.json", output="t/arr.parquet", run=sources.read())
rule("obj", input="data/obj.json", output="t/obj.parquet", run=sources.read(field="data"))
rule("lines", input="data/lines.json", output="t/lines.parquet", run=sources.read())
''')
    project.run()
    assert project.read("t/jl.parquet") == [{"a": 1, "b": None}, {"a": 1, "b": None}, {"a": 2, "b": "new"}]
    assert project.read("t/arr.parquet") == [{"a": 1, "b": None}, {"a": 2, "b": [1, 2]}]
    assert project.read("t/obj.parquet") == [{"q": "x"}, {"q": "y"}]
    assert project.read("t/lines.parquet") == [{"q": "one"}, {"q": "two"}]


def test_read_json_object_without_field(project):
    project.write("data/obj.json", '{"data": [{"q": "x"}]}')
    read_rule(project, "data/obj.json", 'format="json", field="rows"')
    out = project.run(code=2)
    assert "rule 'raw': read field='rows': data/obj.json has no top-level key 'rows' (it has data)" in out


def test_read_text_lines(project):
    project.write("data/a.txt", "")
    (project.root / "data/a.txt").write_bytes(b"first\r\nsecond\n\nlast")
    (project.root / "data/b.txt.gz").write_bytes(gzip.compress("caf\u00e9\nthé\n".encode()))
    project.dreamfile(HEADER + '''
rule("a", input="data/a.txt", output="t/a.parquet", run=sources.read())
rule("b", input="data/b.txt.gz", output="t/b.parquet", run=sources.read())
''')
    project.run()
    assert project.read("t/a.parquet") == [{"text": "first"}, {"text": "second"}, {"text": ""}, {"text": "last"}]
    assert project.read("t/b.parquet") == [{"text": "café"}, {"text": "thé"}]


def test_read_parquet_columns(project):
    (project.root / "data").mkdir()
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"], "c": [0.5, 1.5]}), project.root / "data/in.parquet")
    read_rule(project, "data/in.parquet", 'columns=["c", "a"]')
    project.run()
    assert project.read("t/raw.parquet") == [{"c": 0.5, "a": 1}, {"c": 1.5, "a": 2}]


def test_read_errors(project):
    project.write("data/a.dat", "x")
    read_rule(project, "data/a.dat")
    out = project.run(code=2)
    assert "Dreamfile:2: rule 'raw': cannot tell the format of data/a.dat from its extension — pass format=" in out
    read_rule(project, "data/a.dat", 'format="csv", delimter=";"')
    out = project.run(code=2)
    assert "Dreamfile:2: TypeError: read(): unknown option(s) delimter for format 'csv'" in out
    project.write("data/b.csv", "x\n")
    read_rule(project, "data/b.csv", "field='rows'")
    assert "rule 'raw': rules.read(): unknown option(s) field for format 'csv'" in project.run(code=2)
    project.write("data/bad.jsonl", '{"a": 1}\n{"a": \n')
    read_rule(project, "data/bad.jsonl")
    assert "rule 'raw': cannot read data/bad.jsonl as JSON Lines: JSON parse error" in project.run(code=2)


def test_read_reruns_on_content_change_not_on_touch(project):
    source = project.write("data/a.csv", "q\nhello\n")
    read_rule(project, "data/a.csv")
    project.run()
    assert project.plan() == {}
    later = time.time() + 10
    os.utime(source, (later, later))
    assert project.plan() == {}, "touching the file must not rerun the read rule"
    source.write_text("q\nhello\nbye\n")
    assert project.plan() == {"raw": "input"}
    project.run()
    assert project.read("t/raw.parquet") == [{"q": "hello"}, {"q": "bye"}]


# -- rows ----------------------------------------------------------------------------------------------------
def test_rows_inline(project):
    body = '''
rule("a", output="t/a.parquet", run=sources.rows([{"topic": "tides", "n": 1}, {"topic": "volcanoes"}]))
rule("b", output="t/b.parquet", run=sources.rows({"x": [1, 2], "y": ["p", "q"]}))
'''
    project.dreamfile(HEADER + body)
    project.run()
    assert project.read("t/a.parquet") == [{"topic": "tides", "n": 1}, {"topic": "volcanoes", "n": None}]
    assert project.read("t/b.parquet") == [{"x": 1, "y": "p"}, {"x": 2, "y": "q"}]
    assert project.plan() == {}
    project.dreamfile(HEADER + body.replace('"tides"', '"storms"'))
    assert project.plan() == {"a": "params"}


def test_rows_errors(project):
    project.dreamfile(HEADER + 'rule("a", output="t/a.parquet", run=sources.rows([{"x": 1}, 2]))\n')
    assert "Dreamfile:2: TypeError: rows(): a list of rows must hold dicts; row 1 is a int" in project.run(code=2)
    project.dreamfile(HEADER + 'rule("a", output="t/a.parquet", run=sources.rows({"x": [1], "y": [1, 2]}))\n')
    assert "rows(): the columns have different lengths: {'x': 1, 'y': 2}" in project.run(code=2)
    project.dreamfile(HEADER + 'rule("a", output="t/a.parquet", run=sources.rows([{"x": 1}, {"x": "one"}]))\n')
    assert "rule 'a': rows(): the values do not form a table" in project.run(code=2)


# -- Hugging Face datasets -----------------------------------------------------------------------------------
def test_hf_dataset_saved_to_disk(project):
    from datasets import Dataset, DatasetDict

    Dataset.from_dict({"q": ["a", "b"], "n": [1, 2]}).save_to_disk(str(project.root / "data/one"))
    DatasetDict({"train": Dataset.from_dict({"q": ["t"]}), "test": Dataset.from_dict({"q": ["u", "v"]})}) \
        .save_to_disk(str(project.root / "data/dict"))
    project.dreamfile(HEADER + '''
rule("one", output="t/one.parquet", run=sources.hf_dataset("data/one"))
rule("test", output="t/test.parquet", run=sources.hf_dataset("data/dict/", split="test"))
''')
    project.run()
    assert project.read("t/one.parquet") == [{"q": "a", "n": 1}, {"q": "b", "n": 2}]
    assert project.read("t/test.parquet") == [{"q": "u"}, {"q": "v"}]
    assert project.plan() == {}
    project.dreamfile(HEADER + 'rule("x", output="t/x.parquet", run=sources.hf_dataset("data/dict", split="dev"))\n')
    assert "rule 'x': dataset 'data/dict' has no split 'dev' (it has train, test)" in project.run(code=2)


def test_hf_dataset_folder_of_jsonl_files_is_an_input(project):
    project.write("data/qa/train.jsonl", '{"q": "one"}\n{"q": "two"}\n')
    project.write("data/qa/test.jsonl", '{"q": "three"}\n')
    project.dreamfile(HEADER + '''
rule("train", output="t/train.parquet", run=sources.hf_dataset("data/qa"))
rule("test", output="t/test.parquet", run=sources.hf_dataset("./data/qa", split="test"))
''')
    project.run()
    assert project.read("t/train.parquet") == [{"q": "one"}, {"q": "two"}]
    assert project.read("t/test.parquet") == [{"q": "three"}]
    assert project.plan() == {}
    project.write("data/qa/test.jsonl", '{"q": "three"}\n{"q": "four"}\n')
    assert project.plan() == {"train": "input", "test": "input"}
    project.run()
    assert project.read("t/test.parquet") == [{"q": "three"}, {"q": "four"}]
    assert not list((project.root / ".dreammake").glob("**/*.arrow")), "the HF cache copy must not be kept"


def test_hf_dataset_hub_name_not_cached_offline(project, tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(tmp_path / "empty-cache"))
    project.dreamfile(HEADER + 'rule("sq", output="t/sq.parquet", run=sources.hf_dataset("someone/not-cached"))\n')
    out = project.run(code=2)
    lines = [line for line in out.splitlines() if "not-cached" in line]
    assert len(lines) == 1
    assert lines[0].startswith("error: Dreamfile:2: rule 'sq': dataset someone/not-cached is not in the local "
                               "Hugging Face cache and downloads are off (HF_HUB_OFFLINE) — run `dreammake fetch "
                               "hf:datasets/someone/not-cached` while online")


def fake_hub_cache(root: Path, tmp: Path, commit: str) -> None:
    """Put 'me/TinyQA' into a `datasets` cache at `root`, as a download of commit `commit` would leave it."""
    import datasets

    src = tmp / "src"
    src.mkdir(exist_ok=True)
    (src / "train.jsonl").write_text('{"q": "x", "a": 1}\n{"q": "y", "a": 2}\n')
    (src / "test.jsonl").write_text('{"q": "z", "a": 3}\n')
    datasets.load_dataset("json", data_files={"train": str(src / "train.jsonl"), "test": str(src / "test.jsonl")},
                          cache_dir=str(tmp / "prep"))
    prepared = next((tmp / "prep" / "json").glob("*/0.0.0/*/"))
    target = root / "me___tiny_qa" / "default" / "0.0.0" / commit
    target.mkdir(parents=True)
    for split in ("train", "test"):
        shutil.copy(prepared / f"json-{split}.arrow", target / f"tiny_qa-{split}.arrow")
    info = json.loads((prepared / "dataset_info.json").read_text())
    info["config_name"] = "default"
    (target / "dataset_info.json").write_text(json.dumps(info))


@pytest.mark.filterwarnings("ignore")
def test_hf_dataset_hub_name_from_local_cache(project, tmp_path, monkeypatch):
    import datasets.config

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    fake_hub_cache(cache, tmp_path, "0123456789abcdef0123456789abcdef01234567")
    project.dreamfile(HEADER + '''
rule("test", output="t/test.parquet", run=sources.hf_dataset("me/TinyQA", split="test"))
rule("pinned", output="t/pinned.parquet", run=sources.hf_dataset("me/TinyQA", revision="0123456789ab"))
rule("other", output="t/other.parquet", run=sources.hf_dataset("me/TinyQA", revision="feedbeef"))
''')
    project.run("t/test.parquet", "t/pinned.parquet")
    assert project.read("t/test.parquet") == [{"q": "z", "a": 3}]
    assert project.read("t/pinned.parquet") == [{"q": "x", "a": 1}, {"q": "y", "a": 2}]
    assert project.plan("t/test.parquet") == {}
    out = project.run("t/other.parquet", code=2)
    assert "rule 'other': dataset me/TinyQA@feedbeef is not in the local Hugging Face cache" in out
    # a newer commit lands in the cache: the rule's identity changes, so it reruns
    newer = cache / "me___tiny_qa" / "default" / "0.0.0" / "fedcba9876543210fedcba9876543210fedcba98"
    shutil.copytree(cache / "me___tiny_qa" / "default" / "0.0.0" / "0123456789abcdef0123456789abcdef01234567", newer)
    assert project.plan("t/test.parquet") == {"test": "params"}
