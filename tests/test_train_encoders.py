"""Real (tiny) training runs on MiniLM: classifier and embeddings (full and LoRA)."""

from __future__ import annotations

import json
import os

import pytest
from train_fixtures import write_parquet
from train_helpers import assert_loss_down, check_output

from dreammake.rules.train import run_training

SHORT = {"max_length": 32, "save_steps": 1000, "seed": 0}

CLS_ROWS = [
    {"text": t, "label": lab}
    for t, lab in [
        ("I love this, wonderful!", "pos"),
        ("Great stuff, very happy", "pos"),
        ("Absolutely fantastic", "pos"),
        ("Best day ever", "pos"),
        ("I hate this, awful", "neg"),
        ("Terrible and sad", "neg"),
        ("Worst thing ever", "neg"),
        ("Really bad, very angry", "neg"),
    ]
]


def test_classifier_minilm(tmp_path, minilm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = write_parquet(tmp_path / "train.parquet", CLS_ROWS)
    out = str(tmp_path / "out")
    result = run_training(
        "classifier",
        {"base": minilm, "max_steps": 8, "batch_size": 4, "learning_rate": 5e-4, **SHORT},
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows = check_output(out)
    assert_loss_down(result, rows)
    with open(os.path.join(out, "config.json")) as fh:
        cfg = json.load(fh)
    assert cfg["label2id"] == {"neg": 0, "pos": 1}
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    logits = model(
        **tok(["I love this, wonderful!", "Terrible and sad"], return_tensors="pt", padding=True)
    ).logits
    assert [model.config.id2label[int(i)] for i in logits.argmax(-1)] == ["pos", "neg"]


PAIRS = [
    {"anchor": a, "positive": p}
    for a, p in [
        ("What is the capital of France?", "Paris is the capital of France."),
        ("How many legs does a spider have?", "Spiders have eight legs."),
        ("What colour is the sky?", "The sky is blue."),
        ("Who wrote Hamlet?", "Hamlet was written by Shakespeare."),
        ("What do bees make?", "Bees make honey."),
        ("What is frozen water called?", "Ice is frozen water."),
        ("Which planet is red?", "Mars is the red planet."),
        ("What do cows drink?", "Cows drink water."),
    ]
]


@pytest.mark.parametrize("lora", [None, {"r": 8}], ids=["full", "lora"])
def test_embedding_minilm(tmp_path, minilm, lora):
    from sentence_transformers import SentenceTransformer

    train = write_parquet(tmp_path / "train.parquet", PAIRS)
    out = str(tmp_path / "out")
    result = run_training(
        "embedding",
        {
            "base": minilm,
            "lora": lora,
            "max_steps": 6,
            "batch_size": 8,
            "learning_rate": 2e-3 if lora else 1e-4,
            **SHORT,
        },
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows = check_output(out)
    assert_loss_down(result, rows)
    assert not os.path.exists(os.path.join(out, "adapter_config.json"))
    if lora:  # merged model in the root (loads with plain sentence-transformers), adapter alongside
        from peft import PeftModel
        from transformers import AutoModel

        assert PeftModel.from_pretrained(AutoModel.from_pretrained(minilm), os.path.join(out, "adapter"))
    model = SentenceTransformer(out, device="cpu")
    emb = model.encode(["What do bees make?", "Bees make honey.", "Mars is the red planet."])
    assert emb.shape == (3, 384)
    sims = model.similarity(emb[:1], emb[1:])[0]
    assert float(sims[0]) > float(sims[1])
