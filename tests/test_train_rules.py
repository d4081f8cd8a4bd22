"""Training rules through the Dreamfile: a checkpoint target used as the model of later rules,
a two-round self-rewarding loop (round 2 generates with round 1's checkpoint), and bit-identical rebuilds."""

from __future__ import annotations

import json

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



REBUILD = """
rows = [{"input": f"Say the secret word, please ({i})", "output": "banana"} for i in range(8)]
rule("data", output="t/train.parquet", run=lambda: rows)
rule("model", input={"train": "t/train.parquet"}, output="models/m/",
     run=rules.train_sft(base="smollm2-135m-instruct", lora={"r": 8, "dropout": 0.1}, max_steps=3, batch_size=4,
                         max_length=48, learning_rate=1e-3, save_steps=1000))
"""
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_config.json")  # what loads the model


def test_lora_sft_rebuild_is_bit_identical_on_cpu(project, smol_checkpoint):
    """Same fingerprint, same model: build, clean, build gives the same adapter weights and config bytes (LoRA
    init, data order, dropout and PEFT's module list come from the seed), and the card data says so."""
    import hashlib

    project.dreamfile(REBUILD)
    builds, cards = [], []
    for _ in range(2):
        project.run("models/m/")
        folder = project.root / "models/m"
        builds.append({name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in WEIGHT_FILES})
        cards.append(json.loads((folder / "dreammake-card.json").read_text()))
        project.run("clean", "models/m/")
    print("sha256 per build:", builds)
    assert builds[0] == builds[1]
    for card in cards:
        assert card["model"]["training"]["bit_identical_rebuilds"].startswith("yes on CPU")
