"""The prompt rule kinds, with an instant scripted backend (engine logic) and the real MiniLM embedder."""

from __future__ import annotations

import os

from fakes import calls

HEADER = f"""
import sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from fakes import EchoBackend
"""


def test_data_from_prompt_raising_n_costs_only_new_rows(project):
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: "sample"))
rule("gen", output="t/gen.parquet",
     run=rules.data_from_prompt(llm=m, instruction="Write an abstract.", n=config.get("n", 20),
                                output_column="abstract"))
""")
    project.run()
    assert len(calls(project.root)) == 20
    project.run("--config", "n=25")
    assert len(calls(project.root)) == 25
    rows = project.read("t/gen.parquet")
    assert len(rows) == 25 and rows[0] == {"abstract": "sample"}


def test_process_with_prompt_instruction_and_row_edits(project):
    project.write("d.jsonl", "")
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: t.upper()))
texts = [f"abstract {i}" for i in range(10)]
if config.get("edit"):
    texts[3] = "abstract three"
rule("src", output="t/src.parquet", run=lambda: {"abstract": texts})
rule("tweets", input="t/src.parquet", output="t/tweets.parquet",
     run=rules.process_with_prompt(llm=m, instruction=config.get("instruction", "Tweet it."),
                                   input_column="abstract", output_column="tweet"))
""")
    project.run()
    assert len(calls(project.root)) == 10
    assert project.read("t/tweets.parquet")[0] == {"abstract": "abstract 0", "tweet": "TWEET IT.\n\nABSTRACT 0"}
    project.run("--config", "edit=1")
    assert len(calls(project.root)) == 11
    project.run("--config", "edit=1", "--config", "instruction=Summarize.")
    assert len(calls(project.root)) == 21


def test_few_shot_prompt_uses_examples_target(project):
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: t))
rule("shots", output="t/shots.parquet", run=lambda: {"q": ["1+1", "2+2", "3+3"], "a": ["2", "4", "6"]})
rule("qs", output="t/qs.parquet", run=lambda: {"q": ["5+5"]})
rule("answers", input="t/qs.parquet", output="t/answers.parquet",
     run=rules.few_shot_prompt(llm=m, examples="t/shots.parquet", input_column="q", output_column="a", k=2,
                               instruction="Add."))
""")
    project.run()
    prompt = project.read("t/answers.parquet")[0]["a"]
    assert prompt == "Add.\n\nInput: 1+1\nOutput: 2\n\nInput: 2+2\nOutput: 4\n\nInput: 5+5\nOutput:"
    # the examples target is an input: changing it reruns the rule
    assert "shots" in project.plan("-F", "--until", "answers")


def test_attributed_prompt_combinations(project):
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: t))
rule("reviews", output="t/r.parquet",
     run=rules.data_from_attributed_prompt(llm=m, template="A {{length}} {{tone}} review.",
         attributes={"length": ["short", "long"], "tone": ["happy", "sad", "dry"]}, output_column="review"))
rule("some", output="t/s.parquet",
     run=rules.data_from_attributed_prompt(llm=m, template="A {{length}} review.", n=3, seed=1,
         attributes={"length": ["short", "long", "medium", "tiny"]}, output_column="review"))
""")
    project.run()
    rows = project.read("t/r.parquet")
    assert len(rows) == 6
    assert {"length": "long", "tone": "sad", "review": "A long sad review."} in rows
    some = project.read("t/s.parquet")
    assert len(some) == 3 and len({r["length"] for r in some}) == 3


def test_filter_and_rank(project):
    project.dreamfile(HEADER + """
def judge(text):
    item = text.split("\\n\\n")[-1]
    return "yes" if "good" in item else "no"

def score(text):
    return str(len(text.split("\\n\\n")[-1]))

yes = llm(EchoBackend(reply=judge))
scorer = llm(EchoBackend(reply=score, log_path="score.log"))
rule("items", output="t/items.parquet", run=lambda: {"text": ["good one", "bad", "good two", "meh!"]})
rule("kept", input="t/items.parquet", output="t/kept.parquet",
     run=rules.filter_with_prompt(llm=yes, instruction="Is it good?", input_column="text"))
rule("ranked", input="t/items.parquet", output="t/ranked.parquet",
     run=rules.rank_with_prompt(llm=scorer, instruction="Score.", input_column="text", threshold=4))
""")
    project.run()
    assert project.read("t/kept.parquet") == [{"text": "good one"}, {"text": "good two"}]
    assert project.read("t/ranked.parquet") == [{"text": "good one", "score": 8.0}, {"text": "good two", "score": 8.0},
                                                 {"text": "meh!", "score": 4.0}]


def test_judge_pairs_with_position_swap(project):
    project.dreamfile(HEADER + """
def prefer_longer(text):
    a = text.split("Response A: ")[1].split("\\n\\n")[0]
    b = text.split("Response B: ")[1].split("\\n\\n")[0]
    if a == "same" or b == "same":
        return "Response A"          # position bias: always the first
    return "Response A" if len(a) > len(b) else "Response B"

m = llm(EchoBackend(reply=prefer_longer))
rule("pairs", output="t/p.parquet",
     run=lambda: {"prompt": ["p1", "p2", "p3"], "a": ["long answer", "x", "same"], "b": ["y", "longer one", "same"]})
rule("judged", input="t/p.parquet", output="t/j.parquet",
     run=rules.judge_generation_pairs(llm=m, prompt_column="prompt", a_column="a", b_column="b"))
""")
    project.run()
    labels = [r["judgement"] for r in project.read("t/j.parquet")]
    assert labels == ["Response A", "Response B", "Tie"]


def test_structured_output_and_parse_errors(project):
    project.dreamfile(HEADER + """
replies = {"a": '{"name": "Ada", "age": 36}', "b": 'sure! {"name": "Bob"}', "c": "no json here"}
m = llm(EchoBackend(reply=lambda t: replies[t.split("\\n")[0]]))
schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
rule("src", output="t/src.parquet", run=lambda: {"k": ["a", "b", "c"]})
rule("people", input="t/src.parquet", output="t/people.parquet",
     run=rules.prompt(llm=m, input_column="k", output_column="raw", schema=schema))
""")
    project.run()
    rows = project.read("t/people.parquet")
    assert (rows[0]["name"], rows[0]["age"], rows[0]["_parse_error"]) == ("Ada", 36, None)
    assert rows[1]["name"] is None and rows[1]["_parse_error"] == "missing field(s): age"
    assert rows[2]["_parse_error"] == "no JSON object in the generation"


def test_chat_messages_column(project):
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: "ok:" + t))
rule("chats", output="t/c.parquet", run=lambda: {"messages": [[{"role": "system", "content": "be brief"},
                                                               {"role": "user", "content": "hi"}]]})
rule("replies", input="t/c.parquet", output="t/r.parquet",
     run=rules.prompt(llm=m, input_column="messages", output_column="reply"))
""")
    project.run()
    assert project.read("t/r.parquet")[0]["reply"] == "ok:hi"


def test_embed_and_retrieval_with_minilm(project):
    project.dreamfile(HEADER + """
m = llm(EchoBackend(reply=lambda t: t))
docs = ["The Eiffel Tower is in Paris.", "Bananas are yellow fruit.", "Python is a programming language."]
rule("docs", output="t/docs.parquet", run=lambda: {"text": docs})
rule("vectors", input="t/docs.parquet", output="t/vectors.parquet", run=rules.embed(input_column="text"))
rule("qs", output="t/qs.parquet", run=lambda: {"question": ["Which city has the Eiffel Tower?"],
                                               "answer": ["Paris"]})
rule("rag", input="t/qs.parquet", output="t/rag.parquet",
     run=rules.rag_prompt(llm=m, documents="t/docs.parquet", input_column="question", output_column="reply",
                          k=1, context_column="context"))
rule("shots", input="t/qs.parquet", output="t/shots.parquet",
     run=rules.few_shot_prompt_with_retrieval(llm=m, examples="t/qs.parquet", input_column="question",
                                              output_column="guess", example_output_column="answer", k=1))
""")
    project.run()
    vectors = project.read("t/vectors.parquet")
    assert len(vectors[0]["embedding"]) == 384
    rag = project.read("t/rag.parquet")[0]
    assert rag["context"] == ["The Eiffel Tower is in Paris."]
    assert "Context:\n- The Eiffel Tower is in Paris.\n\nQuestion: Which city" in rag["reply"]
    shot = project.read("t/shots.parquet")[0]["guess"]
    assert "Input: Which city has the Eiffel Tower?\nOutput: Paris" in shot
