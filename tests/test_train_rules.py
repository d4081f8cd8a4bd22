"""Training rules through the Dreamfile: a checkpoint target used as the model of later rules,
and a two-round self-rewarding loop (round 2 generates with round 1's checkpoint)."""

from __future__ import annotations

SELF_REWARDING = """
import os
base = "smollm2-135m-instruct"
prompts = ["Name a fruit.", "Name a colour.", "Name an animal.", "Name a city."]
rule("prompts", output="t/prompts.parquet", run=lambda: {"prompt": prompts})

generator = llm(base, max_tokens=8)
for r in (1, 2):
    rule(f"candidates_{r}", input="t/prompts.parquet", output=f"t/r{r}/candidates.parquet",
         run=rules.prompt(llm=generator, input_column="prompt", output_column="a", temperature=1.0, seed=r))
    rule(f"alternatives_{r}", input=f"t/r{r}/candidates.parquet", output=f"t/r{r}/pairs.parquet",
         run=rules.prompt(llm=generator, input_column="prompt", output_column="b", temperature=1.0, seed=100 + r))

    def preferences(input):
        rows = input.to_list()
        # the judge prefers the shorter answer (a fast, deterministic stand-in for an LLM judge)
        return [{"prompt": x["prompt"], "chosen": min(x["a"], x["b"], key=len),
                 "rejected": max(x["a"], x["b"], key=len)} for x in rows if x["a"] != x["b"]]

    rule(f"prefs_{r}", input=f"t/r{r}/pairs.parquet", output=f"t/r{r}/prefs.parquet", run=preferences)
    rule(f"dpo_{r}", input=f"t/r{r}/prefs.parquet", output=f"models/round{r}/",
         run=rules.train_dpo(base=base, lora={"r": 4}, max_steps=2, batch_size=2, max_length=64, save_steps=1))
    base = target(f"models/round{r}/")
    generator = llm(base, max_tokens=8)

rule("all", input=["models/round2/", "t/r2/prefs.parquet"])
"""


def test_two_round_self_rewarding_loop(project, smol_checkpoint):
    project.dreamfile(SELF_REWARDING)
    plan = project.plan()
    # round 2's generation depends on round 1's checkpoint: it is in the DAG
    assert list(plan).index("candidates_2") > list(plan).index("dpo_1")
    project.run()
    round1, round2 = project.root / "models/round1", project.root / "models/round2"
    for folder in (round1, round2):
        assert (folder / ".dreammake-complete").exists()
        assert (folder / "metrics.parquet").exists()
    # round 1 is a LoRA adapter on SmolLM2; round 2 trained on top of it and is saved merged (self-contained)
    assert (round1 / "adapter_config.json").exists()
    assert (round2 / "config.json").exists() and not (round2 / "adapter_config.json").exists()
    assert len(project.read("t/r2/candidates.parquet")) == 4
    assert project.plan() == {}
    # the round-2 model loads with plain transformers and generates
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(round2)
    tok = AutoTokenizer.from_pretrained(round2)
    ids = tok("Name a fruit.", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
