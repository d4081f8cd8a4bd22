"""Sequence classification (AutoModelForSequenceClassification): text column -> label column."""

from __future__ import annotations

from .common import (
    callbacks,
    ensure_pad_token,
    load_splits,
    lora_config,
    pick_column,
    training_kwargs,
    with_token_counter,
)
from .quantize import load_base
from .runner import save_hf, train_and_finish
from .spec import Spec, is_main


def train(spec: Spec) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    train_ds, val_ds = load_splits(spec)
    cols = list(train_ds.column_names)
    text_col = pick_column(cols, spec, "text_column", ("text", "input", "sentence"))
    pair_col = pick_column(cols, spec, "text_pair_column", (), required=False)
    label_col = pick_column(cols, spec, "label_column", ("label", "labels", "output", "class"))
    labels = spec.options.get("labels") or sorted({str(v) for v in train_ds[label_col]})
    label2id = {str(name): i for i, name in enumerate(labels)}
    id2label = {i: name for name, i in label2id.items()}
    max_length = int(spec.opt("max_length"))

    def encode(batch):
        args = (batch[text_col], batch[pair_col]) if pair_col else (batch[text_col],)
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        enc["labels"] = [label2id[str(v)] for v in batch[label_col]]
        return enc

    def prepare(ds):
        return ds.map(encode, batched=True, remove_columns=list(ds.column_names))

    train_ds = prepare(train_ds)
    val_ds = prepare(val_ds) if val_ds is not None else None
    model = load_base(AutoModelForSequenceClassification, base, spec, num_labels=len(labels), id2label=id2label,
                      label2id=label2id)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if spec.opt("lora") is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(spec, "SEQ_CLS"))
    args = TrainingArguments(**training_kwargs(spec, val_ds is not None, "classifier"))
    trainer = with_token_counter(Trainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=callbacks(spec, val_ds is not None),
    )

    def save():
        save_hf(trainer, spec, tokenizer)
        if is_main() and spec.opt("lora") is not None and not spec.opt("merge"):
            # The adapter folder alone has no label names: keep the (updated) config next to it.
            trainer.accelerator.unwrap_model(trainer.model).base_model.model.config.save_pretrained(
                spec.output_dir
            )

    return train_and_finish(spec, trainer, val_ds is not None, save)
