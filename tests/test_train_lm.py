"""Real (tiny) training runs on SmolLM2-135M and a random tiny T5, on CPU."""

from __future__ import annotations

import json
import math
import os

import torch
from train_fixtures import write_parquet
from train_helpers import assert_loss_down, check_output

from dreammake.rules.train import run_training

SHORT = {"max_length": 64, "save_steps": 1000, "seed": 0}


def _load_peft_causal(out: str):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(os.path.join(out, "adapter_config.json")) as fh:
        base = json.load(fh)["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    return model, AutoTokenizer.from_pretrained(out)


def _generate(model, tok, text: str, n: int = 8) -> str:
    enc = tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=n, do_sample=False)
    return tok.decode(ids[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_sft_lora_smollm2(tmp_path, smollm2):
    rows = [{"input": f"Say the secret word, please ({i})", "output": "banana"} for i in range(8)]
    train = write_parquet(tmp_path / "train.parquet", rows)
    val = write_parquet(tmp_path / "val.parquet", rows[:2])
    out = str(tmp_path / "out")
    result = run_training(
        "sft",
        {"base": smollm2, "lora": {"r": 8}, "max_steps": 5, "batch_size": 4, "learning_rate": 2e-3, **SHORT},
        {"train": train, "validation": val},
        out,
        str(tmp_path / "work"),
    )
    rows_m = check_output(out)
    assert_loss_down(result, rows_m)
    assert result["steps"] == 5 and result["eval_loss"] is not None
    assert os.path.exists(os.path.join(out, "adapter_config.json"))
    model, tok = _load_peft_causal(out)
    assert "banana" in _generate(model, tok, "Say the secret word, please (3)").lower()


def test_dpo_lora_smollm2(tmp_path, smollm2):
    rows = [
        {"prompt": f"Name a fruit ({i}).", "chosen": "Apple.", "rejected": "A rusty old bicycle wheel."}
        for i in range(8)
    ]
    train = write_parquet(tmp_path / "train.parquet", rows)
    out = str(tmp_path / "out")
    result = run_training(
        "dpo",
        {"base": smollm2, "lora": {"r": 8}, "max_steps": 4, "batch_size": 4, "learning_rate": 2e-3, **SHORT},
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows_m = check_output(out)
    assert_loss_down(result, rows_m)
    model, tok = _load_peft_causal(out)
    assert _generate(model, tok, "Name a fruit (1).").strip()


def test_reward_smollm2(tmp_path, smollm2):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = [
        {
            "prompt": f"Question {i}: is the sky blue?",
            "chosen": "Yes, the sky is blue.",
            "rejected": "Potato.",
        }
        for i in range(8)
    ]
    train = write_parquet(tmp_path / "train.parquet", rows)
    out = str(tmp_path / "out")
    result = run_training(
        "reward",
        {"base": smollm2, "lora": {"r": 8}, "max_steps": 5, "batch_size": 4, "learning_rate": 3e-3, **SHORT},
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows_m = check_output(out)
    assert_loss_down(result, rows_m)
    tok = AutoTokenizer.from_pretrained(out)
    base = AutoModelForSequenceClassification.from_pretrained(smollm2, num_labels=1)
    base.config.pad_token_id = tok.pad_token_id
    model = PeftModel.from_pretrained(base, out).eval()

    def score(answer: str) -> float:
        msgs = [
            {"role": "user", "content": "Question 1: is the sky blue?"},
            {"role": "assistant", "content": answer},
        ]
        enc = tok.apply_chat_template(msgs, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            return float(model(**enc).logits[0, 0])

    assert score("Yes, the sky is blue.") > score("Potato.")


def test_seq2seq_sft_tiny_t5(tmp_path, tiny_t5):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    rows = [{"input": f"translate number {i}", "output": "one two three"} for i in range(8)]
    train = write_parquet(tmp_path / "train.parquet", rows)
    out = str(tmp_path / "out")
    result = run_training(
        "sft",
        {"base": tiny_t5, "max_steps": 8, "batch_size": 4, "learning_rate": 3e-3, **SHORT},
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows_m = check_output(out)
    assert_loss_down(result, rows_m)
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok("translate number 3", return_tensors="pt", return_token_type_ids=False)
    ids = model.generate(**enc, max_new_tokens=6)
    assert ids.shape[1] > 1


def test_grpo_function_reward(tmp_path, smollm2):
    rows = [{"prompt": f"Write one short word ({i})."} for i in range(4)]
    train = write_parquet(tmp_path / "train.parquet", rows)
    out = str(tmp_path / "out")
    from rewards import short_answer

    result = run_training(
        "grpo",
        {
            "base": smollm2,
            "lora": {"r": 8},
            "reward_fn": short_answer,
            "max_steps": 2,
            "batch_size": 4,
            "num_generations": 4,
            "max_completion_length": 8,
            "learning_rate": 1e-3,
            **SHORT,
        },
        {"train": train},
        out,
        str(tmp_path / "work"),
    )
    rows_m = check_output(out)
    assert result["steps"] == 2
    # Honest GRPO checks for two steps: the user reward was called and logged per step (finite, and the
    # sampled completions got different rewards, so advantages were non-zero), and the loss was computed.
    rewards = [r["reward"] for r in rows_m if r.get("reward") is not None]
    assert len(rewards) == 2 and all(math.isfinite(x) for x in rewards)
    assert any((r.get("reward_std") or 0) > 0 for r in rows_m)
    assert all(r["train_loss"] is not None for r in rows_m if r["step"] > 0)
    model, tok = _load_peft_causal(out)
    assert _generate(model, tok, "Write one short word (1).")
