"""Cards traced through a multi-step synthetic workflow (instant fake models, offline), and recursive
fingerprints / `dreammake diff` across two project folders.

The workflow helpers here are shared with test_publish.py and test_report.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import Project

from dreammake.cli import main
from dreammake.cli_cards import COMMANDS

TESTS = os.path.dirname(os.path.abspath(__file__))
ROWS = 1500  # 1K<n<10K
TOPICS_README = """---
license: cc-by-4.0
---
# Topics

```bibtex
@misc{topics2025, title = {A list of NLP topics}, year = {2025}}
```
"""
WORKFLOW = f"""
import itertools, json, os, sys
sys.path.insert(0, {TESTS!r})
from fakes import EchoBackend
from dreammake.actions import Action


class HubQuestions(Action):
    # stands in for rules.hf_dataset("squad", revision=...) (rows "from the Hub", made up here: offline)
    kind = "hf_dataset"

    def params(self):
        return {{"name": "squad", "config": None, "split": "train", "revision": "0123abcd", "data_dir": None}}

    def execute(self, ctx):
        return {{"question": [f"What is {{i}}?" for i in range(5)]}}


class FakeTrain(Action):
    # stands in for rules.train_sft: a LoRA-shaped checkpoint with metrics, without torch
    kind = "train_sft"

    def __init__(self, base):
        self.base = base

    def params(self):
        return {{"input_column": "abstract", "output_column": "tweet", "lora": {{"r": 8}}}}

    def execute(self, ctx):
        import pyarrow as pa, pyarrow.parquet as pq
        out = next(iter(ctx.outputs.values()))
        files = {{"adapter_config.json": json.dumps({{"base_model_name_or_path": "/cache/smollm2", "r": 8}}),
                 "tokenizer_config.json": json.dumps({{"model_max_length": 512}}),
                 "dreammake-base.txt": self.base, ".dreammake-complete": "{{}}",
                 "training_args.json": json.dumps({{"summary": {{"steps": 40}}}})}}
        for name, text in files.items():
            with open(os.path.join(out, name), "w") as f:
                f.write(text)
        with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
            f.write(bytes(64))
        steps = list(range(1, 41))
        pq.write_table(pa.table({{"step": steps, "train_loss": [2.5 / s ** 0.4 for s in steps],
                                 "eval_loss": [2.6 / s ** 0.35 if s % 10 == 0 else None for s in steps]}}),
                       os.path.join(out, "metrics.parquet"))
        ctx.stats.update({{"train_steps": 40, "train_train_loss": 0.57}})


smol = EchoBackend(reply=lambda t, n=itertools.count(): f"Abstract {{next(n)}} about " + t[-20:])
smol.name = "smollm2-135m-instruct"
gpt = EchoBackend(reply=lambda t: "Tweet: " + t[-30:], log_path="gpt.log")
gpt.name = "openai/gpt-4o-mini"
tiny = llm(smol)
judge = llm(gpt)

def mix(tweets, topics, questions):
    t, q = topics["topic"], questions["question"]
    n = len(tweets)
    return {{"abstract": tweets["abstract"], "tweet": tweets["tweet"],
             "topic": [t[i % len(t)] for i in range(n)], "question": [q[i % len(q)] for i in range(n)]}}

def split(input):
    k = len(input) * 9 // 10
    return {{"train": input[:k], "validation": input[k:]}}

rule("topics", input="data/topics.txt", output="targets/topics.parquet",
     run=lambda input: {{"topic": open(input).read().split()}})
rule("questions", output="targets/questions.parquet", run=HubQuestions())
rule("abstracts", output="targets/abstracts.parquet",
     run=rules.data_from_prompt(llm=tiny, n={ROWS}, output_column="abstract",
                                instruction="Write an abstract of an NLP paper."))
rule("tweets", input="targets/abstracts.parquet", output="targets/tweets.parquet",
     run=rules.process_with_prompt(llm=judge, input_column="abstract", output_column="tweet",
                                   instruction="Summarize this abstract as a tweet."))
rule("mixed", input={{"tweets": "targets/tweets.parquet", "topics": "targets/topics.parquet",
                     "questions": "targets/questions.parquet"}}, output="targets/mixed.parquet", run=mix)
rule("splits", input="targets/mixed.parquet",
     output={{"train": "targets/splits/train.parquet", "validation": "targets/splits/validation.parquet"}}, run=split)
rule("tweet_model", output="models/tweet-model/", run=FakeTrain(base="smollm2-135m-instruct"),
     input={{"train": "targets/splits/train.parquet", "validation": "targets/splits/validation.parquet"}})
"""


def make_workflow(root: Path, dreamfile: str = WORKFLOW) -> Project:
    """A project folder with the workflow's Dreamfile and its local source data."""
    project = Project(root)
    project.dreamfile(dreamfile)
    project.write("data/topics.txt", "parsing translation summarization dialogue\n")
    project.write("data/README.md", TOPICS_README)
    return project


@contextlib.contextmanager
def inside(root: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old)


def run_cards(root: Path, *args: str, code: int | None = 0) -> str:
    """Run one of the card commands in-process, from a group holding dreammake's commands and ours."""
    group = click.Group("dreammake", commands={**main.commands, **{c.name: c for c in COMMANDS}})
    with inside(root):
        result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{result.output}"
    return result.output


def write_all_cards(root: Path, all_targets: bool = True) -> list[str]:
    """What the engine does after a build (here by default for every job, not only the final ones)."""
    from dreammake.cards.render import write_built_cards
    from dreammake.console import Console
    from dreammake.project import Options
    from dreammake.project import Project as DreamProject

    with inside(root), DreamProject(Options(), Console()) as p:
        graph = p.graph()
        return write_built_cards(graph, p.state, [j.name for j in graph.jobs], all_targets=all_targets)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The workflow built once, with its cards written."""
    project = make_workflow(tmp_path_factory.mktemp("cards"))
    project.run()
    write_all_cards(project.root)
    return project


def test_size_categories() -> None:
    from dreammake.cards.build import size_category

    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 999_999, 10**6, 10**12)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "n>1T"]


def test_dataset_card_names_every_upstream_model_and_dataset(built: Project) -> None:
    from huggingface_hub import DatasetCard

    root = built.root
    text = (root / "targets/splits/train.README.md").read_text()
    meta = DatasetCard(text).data.to_dict()  # parses the YAML locally: no network
    assert meta["license"] == "other"  # apache-2.0, OpenAI terms, cc-by-4.0, cc-by-sa-4.0 upstream
    assert {"synthetic", "dreammake", "data_from_prompt", "process_with_prompt"} <= set(meta["tags"])
    assert meta["size_categories"] == ["1K<n<10K"]
    assert meta["source_datasets"] == ["rajpurkar/squad"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "train.parquet"}, {"split": "validation", "path": "validation.parquet"}]}]
    for needle in ("smollm2-135m-instruct", "apache-2.0", "openai/gpt-4o-mini", "https://openai.com/policies",
                   "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct", "eprint = {2502.02737}",
                   "squad", "cc-by-sa-4.0", "Rajpurkar", "data/topics.txt", "cc-by-4.0", "topics2025",
                   "| train | 1,350 |", "| validation | 150 |", "Summarize this abstract as a tweet."):
        assert needle in text, needle

    card = json.loads((root / "targets/splits/train.dreammake-card.json").read_text())
    lineage = card["lineage"]
    names = [s["name"] for s in lineage["steps"]]
    assert sorted(names) == ["abstracts", "mixed", "questions", "splits", "topics", "tweets"] and names[-1] == "splits"
    models = {m["name"]: m for m in lineage["models"]}
    assert set(models) == {"smollm2-135m-instruct", "openai/gpt-4o-mini"}
    assert models["smollm2-135m-instruct"]["repo"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models["openai/gpt-4o-mini"]["organization"] == "OpenAI"
    datasets = {d["name"]: d for d in lineage["datasets"]}
    assert datasets["data/topics.txt"]["license"] == "cc-by-4.0" and datasets["data/topics.txt"]["content_hash"]
    assert datasets["squad"]["revision"] == "0123abcd" and datasets["squad"]["citation"]
    assert lineage["totals"]["llm_calls"] == 2 * ROWS and lineage["totals"]["cost_usd"] == pytest.approx(3.0)
    steps = {s["name"]: s for s in lineage["steps"]}
    assert steps["abstracts"]["built_at"] and steps["abstracts"]["fingerprint"] and steps["abstracts"]["rows"] == ROWS
    assert steps["abstracts"]["kind"] == "data_from_prompt" and steps["abstracts"]["version"] == 1
    assert lineage["environment"]["packages"]["pyarrow"]
    assert (root / "targets/tweets.README.md").exists() and (root / "targets/tweets.dreammake-card.json").exists()


def test_model_card_inside_checkpoint(built: Project) -> None:
    from huggingface_hub import ModelCard

    # by default a build writes the cards of built-in kinds' outputs, final targets and checkpoints, not those of
    # the Dreamfile's own functions' intermediate tables (topics, mixed, splits)
    written = write_all_cards(built.root, all_targets=False)
    assert sorted(p for p in written if p.endswith("README.md")) == [
        "models/tweet-model/README.md", "targets/abstracts.README.md", "targets/questions.README.md",
        "targets/tweets.README.md"]
    folder = built.root / "models/tweet-model"
    text = (folder / "README.md").read_text()
    meta = ModelCard(text).data.to_dict()
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert {"dreammake", "synthetic", "sft", "lora"} <= set(meta["tags"])
    assert meta["datasets"] == ["rajpurkar/squad"]
    assert meta["widget"][0]["text"].startswith("Abstract ")
    assert "AutoPeftModelForCausalLM" in text and 'from_pretrained("models/tweet-model")' in text
    assert "trained over `SmolLM2-135M-Instruct.Q4_1.gguf`" in text  # not the Hub's weights: the card says so
    card = json.loads((folder / "dreammake-card.json").read_text())
    assert card["model"]["training"]["steps"] == 40
    assert {m["name"] for m in card["lineage"]["models"]} == {"smollm2-135m-instruct", "openai/gpt-4o-mini"}
    assert {m["role"] for m in card["lineage"]["models"]} == {"generator", "base model"}


def test_card_command_json_and_own_template(built: Project, tmp_path: Path) -> None:
    data = json.loads(run_cards(built.root, "card", "targets/tweets.parquet", "--format", "json"))
    assert data["type"] == "dataset" and data["front_matter"]["size_categories"] == ["1K<n<10K"]
    assert data["splits"] == [{"split": "train", "path": "targets/tweets.parquet", "file": "targets/tweets.parquet",
                               "rows": ROWS}]
    template = tmp_path / "mine.md.j2"
    template.write_text("{% extends 'dataset_card.md.j2' %}\n"
                        "{#- a user's card: the built-in one, with a line of its own -#}\n"
                        "{% block unused %}{% endblock %}\n")
    assert run_cards(built.root, "card", "tweets", "--template", str(template)).startswith("---\nlicense: other")
    template.write_text("Custom card for {{ step.rule }}: {{ card.front_matter.license }}, "
                        "{{ lineage.steps | length }} steps\n")
    out = tmp_path / "card.md"
    run_cards(built.root, "card", "tweets", "--template", str(template), "--license", "mit", "-o", str(out))
    assert out.read_text() == "Custom card for tweets: mit, 2 steps\n"
    assert "no rule makes nothing" in run_cards(built.root, "card", "nothing", code=2)


def test_fingerprints_match_across_folders_and_diff_names_rule_and_component(tmp_path: Path) -> None:
    a = make_workflow(tmp_path / "a")
    b = make_workflow(tmp_path / "b")
    a.run("targets/tweets.parquet")  # built or not, the recursive fingerprint is the same
    fp_a = run_cards(a.root, "fingerprint", "tweet_model").split()[0]
    assert fp_a == run_cards(b.root, "fingerprint", "tweet_model").split()[0]
    assert len(fp_a) == 32
    tree = run_cards(a.root, "fingerprint", "models/tweet-model/", "--tree")
    assert tree.splitlines()[0].startswith(fp_a)
    for job in ("abstracts", "tweets", "mixed", "splits", "topics", "questions", "(source) data/topics.txt"):
        assert job in tree
    assert run_cards(a.root, "diff", str(b.root)).endswith("the workflows compute the same targets\n")

    b.dreamfile(WORKFLOW.replace("Summarize this abstract as a tweet.", "Write a tweet about this abstract."))
    assert run_cards(b.root, "fingerprint", "tweet_model").split()[0] != fp_a
    out = run_cards(a.root, "diff", str(b.root), code=1)
    lines = {line.split()[1]: line for line in out.splitlines() if not line.startswith("first")}
    assert lines["abstracts"].startswith("same") and lines["topics"].startswith("same")
    assert lines["tweets"].startswith("differs") and "params changed" in lines["tweets"]
    assert "inputs changed (upstream tweets)" in lines["mixed"]
    assert "first divergence: tweets (params changed)" in out
    report = json.loads(run_cards(a.root, "diff", str(b.root), "--json", code=1))
    assert report["first_divergence"]["job"] == "tweets" and report["first_divergence"]["components"] == ["params"]

    shutil.copy(a.root / "Dreamfile", b.root / "Dreamfile")
    (b.root / "data/topics.txt").write_text("retrieval\n")
    out = run_cards(a.root, "diff", str(b.root), code=1)
    assert "source data/topics.txt" in out and "first divergence: topics" in out


def test_registry_knows_models_without_loading_them(tmp_path: Path) -> None:
    from dreammake.cards.lineage import describe_llm
    from dreammake.known import model_info
    from dreammake.llm.handle import llm

    smol = model_info("hf:HuggingFaceTB/SmolLM2-135M-Instruct@abc123")
    assert (smol["license"], smol["revision"], smol["organization"]) == ("apache-2.0", "abc123", "HuggingFaceTB")
    assert model_info("all-minilm-l6-v2")["card_url"] == "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
    claude = model_info("anthropic/claude-3-5-haiku")
    assert claude["organization"] == "Anthropic" and claude["license"] == "other" and claude["license_link"]
    assert model_info("my-own-model")["license"] == "unknown"
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# Base\n```bibtex\n@misc{base2025}\n```\n")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert (model_info(str(base))["license"], model_info(str(base))["citation"]) == ("mit", "@misc{base2025}")
    assert model_info(str(adapter))["license"] == "mit"  # inherited from its base model
    handle = llm("smollm2-135m-instruct", temperature=0.7)
    assert describe_llm(handle, None)["repo"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert handle._backend is None  # a card never creates (or loads) the model


def test_credentials_are_scrubbed_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from dreammake.cards.secrets import redact, scrub

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    assert scrub({"api_key": "x", "nested": [{"hf_token": "y", "keep": 1}]}) == {"nested": [{"keep": 1}]}
    assert redact("a prompt quoting sk-test-0123456789 by mistake") == "a prompt quoting *** by mistake"
