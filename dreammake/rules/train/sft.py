"""Supervised fine-tuning: causal LMs through TRL's SFTTrainer, seq2seq models through Seq2SeqTrainer."""

from __future__ import annotations

from typing import Any

from .common import (
    callbacks,
    ensure_pad_token,
    load_splits,
    lora_config,
    pick_column,
    render_template,
    training_kwargs,
    with_token_counter,
)
from .quantize import load_base
from .runner import save_hf, train_and_finish
from .spec import Spec

INPUT_CANDIDATES = ("input", "prompt", "instruction", "question", "source", "query")
OUTPUT_CANDIDATES = ("output", "completion", "response", "answer", "target", "label")


def _is_seq2seq(base: str) -> bool:
    from transformers import AutoConfig

    return bool(getattr(AutoConfig.from_pretrained(base), "is_encoder_decoder", False))


def to_pairs(ds, spec: Spec, tokenizer, use_chat: bool):
    """Turn a table into TRL's prompt-completion format (conversational when the chat template is used).

    Returns (dataset, mode) where mode is "messages", "text" or "prompt_completion".
    """
    cols = list(ds.column_names)
    messages_col = pick_column(cols, spec, "messages_column", ("messages", "conversation", "chat"), False)
    completion_only = spec.opt("completion_only_loss", True)
    if messages_col:

        def split_messages(row):
            msgs = [{"role": m["role"], "content": m["content"]} for m in row[messages_col]]
            if completion_only and len(msgs) > 1 and msgs[-1]["role"] == "assistant":
                return {"prompt": msgs[:-1], "completion": msgs[-1:]}
            return {"messages": msgs}

        out = ds.map(split_messages, remove_columns=cols)
        return out, ("prompt_completion" if "prompt" in out.column_names else "messages")

    input_col = pick_column(cols, spec, "input_column", INPUT_CANDIDATES, required=False)
    text_col = pick_column(cols, spec, "text_column", ("text",), required=False)
    if input_col is None and text_col is not None:
        out = ds.select_columns([text_col])
        if text_col != "text":
            out = out.rename_column(text_col, "text")
        return out, "text"
    input_col = input_col or pick_column(cols, spec, "input_column", INPUT_CANDIDATES)
    output_col = pick_column(cols, spec, "output_column", OUTPUT_CANDIDATES)
    template = spec.options.get("prompt_template")
    system = spec.options.get("system_prompt")

    def convert(row: dict[str, Any]):
        prompt = render_template(template, row, input_col) if template else str(row[input_col])
        completion = str(row[output_col])
        if use_chat:
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            return {"prompt": msgs, "completion": [{"role": "assistant", "content": completion}]}
        return {"prompt": prompt, "completion": completion}

    out = ds.map(convert, remove_columns=cols)
    if not completion_only:
        if use_chat:
            out = out.map(
                lambda r: {"messages": r["prompt"] + r["completion"]}, remove_columns=["prompt", "completion"]
            )
            return out, "messages"
        out = out.map(
            lambda r: {"text": r["prompt"] + r["completion"]}, remove_columns=["prompt", "completion"]
        )
        return out, "text"
    return out, "prompt_completion"


def train(spec: Spec) -> dict:
    base = spec.options["base"]
    if _is_seq2seq(base):
        return train_seq2seq(spec)
    return train_causal(spec)


def train_causal(spec: Spec) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    use_chat = (
        bool(spec.opt("chat_template", True))
        and bool(getattr(tokenizer, "chat_template", None))
        and (not spec.options.get("prompt_template"))
    )
    train_ds, val_ds = load_splits(spec)
    train_ds, _mode = to_pairs(train_ds, spec, tokenizer, use_chat)
    if val_ds is not None:
        val_ds, _ = to_pairs(val_ds, spec, tokenizer, use_chat)

    model = load_base(AutoModelForCausalLM, base, spec)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    kw = training_kwargs(spec, val_ds is not None, "sft")
    args = SFTConfig(
        **kw,
        max_length=int(spec.opt("max_length")),
        packing=bool(spec.opt("packing", False)),
        dataset_num_proc=None,
    )
    peft_config = lora_config(spec, "CAUSAL_LM") if spec.opt("lora") is not None else None
    trainer = with_token_counter(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks(spec, val_ds is not None),
    )
    return train_and_finish(spec, trainer, val_ds is not None, lambda: save_hf(trainer, spec, tokenizer))


def train_seq2seq(spec: Spec) -> dict:
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    max_length = int(spec.opt("max_length"))
    max_target = int(spec.opt("max_target_length", max_length))
    train_ds, val_ds = load_splits(spec)

    def prepare(ds):
        pairs, mode = to_pairs(ds, spec, tokenizer, use_chat=False)
        if mode != "prompt_completion":
            raise ValueError(
                "seq2seq SFT needs input/output columns (or messages ending with an assistant turn)"
            )

        def tok(batch):
            enc = tokenizer(batch["prompt"], max_length=max_length, truncation=True)
            enc["labels"] = tokenizer(
                text_target=batch["completion"], max_length=max_target, truncation=True
            )["input_ids"]
            return enc

        return pairs.map(tok, batched=True, remove_columns=pairs.column_names)

    train_ds = prepare(train_ds)
    val_ds = prepare(val_ds) if val_ds is not None else None
    model = load_base(AutoModelForSeq2SeqLM, base, spec)
    if spec.opt("lora") is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(spec, "SEQ_2_SEQ_LM"))
    args = Seq2SeqTrainingArguments(**training_kwargs(spec, val_ds is not None, "sft"))
    trainer = with_token_counter(Seq2SeqTrainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        callbacks=callbacks(spec, val_ds is not None),
    )
    return train_and_finish(spec, trainer, val_ds is not None, lambda: save_hf(trainer, spec, tokenizer))
