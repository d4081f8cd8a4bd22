"""An API model's name is not its version: the row cache keeps each answer's served model and system fingerprint,
cards list the distinct values, `dreammake status` warns when a target's rows came from more than one, and cache
files (and exports) from before these columns still open."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dreammake.llm import cache

DREAMFILE = """
api = llm("openai/test-model", api_base={base!r})
rule("questions", output="t/q.parquet", run=rules.rows({{"q": {questions!r}}}))
rule("answers", input="t/q.parquet", output="t/a.parquet", run=rules.prompt(llm=api, input_column="q",
     output_column="a"))
"""


def served(project) -> dict:
    step = json.loads(project.run("card", "t/a.parquet", "--format", "json"))["lineage"]["steps"][-1]
    return {k: step["llm"].get(k) for k in ("served_models", "system_fingerprints")}


def test_served_models_and_fingerprints_reach_the_cache_cards_and_status(project, fault_server):
    fault_server.served_model, fault_server.system_fingerprint = "test-model-2026-01-15", "fp_aaa"
    project.dreamfile(DREAMFILE.format(base=fault_server.api_base, questions=["one", "two"]))
    project.run()
    db = duckdb.connect(str(project.root / ".dreammake" / cache.CACHE_FILE), read_only=True)
    assert db.execute("SELECT DISTINCT served_model, system_fingerprint FROM llm_cache").fetchall() == [
        ("test-model-2026-01-15", "fp_aaa")]
    db.close()
    assert served(project) == {"served_models": ["test-model-2026-01-15"], "system_fingerprints": ["fp_aaa"]}
    assert "warning" not in project.run("status")

    fault_server.system_fingerprint = "fp_bbb"  # the provider changed its backend between runs
    project.dreamfile(DREAMFILE.format(base=fault_server.api_base, questions=["one", "two", "three"]))
    project.run()
    assert sum(fault_server.answered.values()) == 3  # the first two rows came from the cache
    assert served(project) == {"served_models": ["test-model-2026-01-15"], "system_fingerprints": ["fp_aaa", "fp_bbb"]}
    out = project.run("status")
    assert "warning: t/a.parquet's rows came from 2 system fingerprints: fp_aaa, fp_bbb" in out
    assert "served models" not in out
    status = json.loads(project.run("status", "--json"))
    answers = next(t for t in status["targets"] if t["target"] == "t/a.parquet")
    assert answers["system_fingerprints"] == ["fp_aaa", "fp_bbb"]


OLD_SCHEMA = """
CREATE TABLE llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR, text VARCHAR, finish_reason VARCHAR,
    prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd DOUBLE, latency_s DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE spool_offsets (file VARCHAR PRIMARY KEY, "offset" BIGINT);
INSERT INTO llm_cache VALUES ('k1', 'm', 'old answer', 'stop', 1, 2, 0.0, 0.1, current_timestamp);
"""


def test_a_cache_file_and_an_export_from_before_provenance_still_work(tmp_path):
    old = duckdb.connect(str(tmp_path / cache.CACHE_FILE))
    old.execute(OLD_SCHEMA)
    old.close()
    db = cache.open_cache(tmp_path)
    row_cache = cache.RowCache(db, str(tmp_path / "spool" / "x.jsonl"))
    found = row_cache.lookup(["k1", "k2"])
    assert found.column("text").to_pylist() == ["old answer", None]
    assert found.column("served_model").to_pylist() == [None, None]
    row_cache.close()

    legacy = pa.table({"key": ["k3"], "model": ["m"], "text": ["exported"], "finish_reason": ["stop"],
                       "prompt_tokens": pa.array([1], pa.int32()), "completion_tokens": pa.array([1], pa.int32()),
                       "cost_usd": [0.0], "latency_s": [0.0], "created_at": pa.array([0], pa.timestamp("us"))})
    pq.write_table(legacy, tmp_path / "old-export.parquet")
    assert cache.import_rows(db, str(tmp_path / "old-export.parquet")) == 1
    assert db.execute("SELECT text, served_model FROM llm_cache WHERE key = 'k3'").fetchall() == [("exported", None)]
    db.close()
