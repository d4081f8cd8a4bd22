"""API embedders (an OpenAI-compatible /v1/embeddings, here the fake server) for `embed`, `retrieve` and
`cosine_similarity`, cached row by row; and `run_task_model` over a column with a classifier folder or a
checkpoint the Dreamfile builds."""

from __future__ import annotations

import pytest

DOCS = ["the tides follow the moon", "volcanoes erupt molten rock", "bees make honey from nectar"]


def api_dreamfile(base: str, questions: list[str]) -> str:
    return f"""
api = llm("openai/test-embedder", api_base={base!r})
rule("docs", output="t/docs.parquet", run=rules.rows({{"text": {DOCS!r}}}))
rule("qs", output="t/qs.parquet", run=rules.rows({{"q": {questions!r}, "p": {questions!r}}}))
rule("vectors", input="t/docs.parquet", output="t/vectors.parquet", run=rules.embed(model=api, batch_size=2))
rule("found", input="t/qs.parquet", output="t/found.parquet",
     run=rules.retrieve(corpus="t/docs.parquet", input_column="q", k=2, embedder_model=api))
rule("same", input="t/qs.parquet", output="t/same.parquet",
     run=rules.cosine_similarity("q", "p", embedder_model=api))
rule("all", input=["t/vectors.parquet", "t/found.parquet", "t/same.parquet"])
"""


def test_api_embeddings_retrieve_and_similarity_cached_row_by_row(project, fault_server):
    project.dreamfile(api_dreamfile(fault_server.api_base, ["when do tides come", "what do bees make"]))
    project.run()
    vectors = project.read("t/vectors.parquet")
    assert [r["text"] for r in vectors] == DOCS and all(len(r["embedding"]) == 64 for r in vectors)
    assert sum(v * v for v in vectors[0]["embedding"]) == pytest.approx(1.0, abs=1e-5)
    found = project.read("t/found.parquet")
    assert [r["retrieved"][0] for r in found] == [DOCS[0], DOCS[2]]
    assert all(r["scores"][0] >= r["scores"][1] for r in found)
    assert [r["similarity"] for r in project.read("t/same.parquet")] == pytest.approx([1.0, 1.0], abs=1e-5)
    texts = len(fault_server.embedded)
    assert texts == len(set(fault_server.embedded))  # each text asked once, whatever rule wants it

    project.dreamfile(api_dreamfile(fault_server.api_base, ["when do tides come", "where is lava from"]))
    project.run()
    assert fault_server.embedded[texts:] == ["where is lava from"]  # the rest came from the row cache
    assert project.read("t/found.parquet")[1]["retrieved"][0] == DOCS[1]
    assert project.plan() == {}


@pytest.fixture(scope="session")
def tiny_classifier(minilm, tmp_path_factory) -> str:
    """A randomly initialised two-label classifier on MiniLM's config and tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    dest = str(tmp_path_factory.mktemp("tiny-clf"))
    config = AutoConfig.from_pretrained(minilm, num_labels=2, id2label={0: "calm", 1: "stormy"},
                                        label2id={"calm": 0, "stormy": 1}, num_hidden_layers=1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(dest)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(dest)
    return dest


def test_run_task_model_with_a_folder_and_a_checkpoint_the_dreamfile_builds(project, tiny_classifier):
    project.dreamfile(f"""
import shutil
rule("texts", output="t/texts.parquet", run=rules.rows({{"text": ["a quiet sea", "a wild storm", "grey skies"]}}))
rule("clf", output="models/clf/", run=lambda output: shutil.copytree({tiny_classifier!r}, output, dirs_exist_ok=True))
rule("by_folder", input="t/texts.parquet", output="t/by_folder.parquet",
     run=rules.run_task_model({tiny_classifier!r}, input_column="text"))
rule("by_target", input="t/texts.parquet", output="t/by_target.parquet",
     run=rules.run_task_model(target("models/clf/"), input_column="text", output_column="mood", scores_column="p"))
rule("all", input=["t/by_folder.parquet", "t/by_target.parquet"])
""")
    project.run()
    by_folder, by_target = project.read("t/by_folder.parquet"), project.read("t/by_target.parquet")
    assert [r["text"] for r in by_folder] == ["a quiet sea", "a wild storm", "grey skies"]
    assert all(r["label"] in ("calm", "stormy") and 0.0 <= r["score"] <= 1.0 for r in by_folder)
    assert [r["mood"] for r in by_target] == [r["label"] for r in by_folder]
    assert project.plan() == {}
