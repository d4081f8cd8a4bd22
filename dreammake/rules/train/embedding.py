"""Embedding models: sentence-transformers' SentenceTransformerTrainer.

Data shapes (columns are picked by name or set via options):
- pairs ``anchor, positive`` and triplets ``anchor, positive, negative`` -> MultipleNegativesRankingLoss
- labelled pairs ``sentence1, sentence2, score|label`` -> CoSENTLoss
``options["loss"]`` overrides: mnrl, cosent, cosine, contrastive, online_contrastive, triplet.
"""

from __future__ import annotations

import os

from .common import (
    callbacks,
    load_splits,
    lora_config,
    pick_column,
    training_kwargs,
    with_token_counter,
)
from .runner import train_and_finish
from .spec import Spec, is_main

LOSSES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cosent": "CoSENTLoss",
    "cosine": "CosineSimilarityLoss",
    "contrastive": "ContrastiveLoss",
    "online_contrastive": "OnlineContrastiveLoss",
    "triplet": "TripletLoss",
}


def select_columns(ds, spec: Spec):
    """Order the columns the way sentence-transformers expects (texts first, then ``label``)."""
    cols = list(ds.column_names)
    label = pick_column(cols, spec, "label_column", ("score", "label", "similarity"), required=False)
    if label is not None:
        first = pick_column(cols, spec, "anchor_column", ("sentence1", "anchor", "text1", "query"))
        second = pick_column(cols, spec, "positive_column", ("sentence2", "positive", "text2", "document"))
        out = ds.select_columns([first, second, label])
        out = out.rename_columns({first: "sentence1", second: "sentence2", label: "label"})
        return out.cast_column("label", _float_feature()), "labelled"
    anchor = pick_column(cols, spec, "anchor_column", ("anchor", "query", "sentence1", "text1"))
    positive = pick_column(cols, spec, "positive_column", ("positive", "document", "sentence2", "text2"))
    negative = pick_column(cols, spec, "negative_column", ("negative",), required=False)
    chosen = [anchor, positive] + ([negative] if negative else [])
    names = ["anchor", "positive"] + (["negative"] if negative else [])
    out = ds.select_columns(chosen).rename_columns(dict(zip(chosen, names, strict=True)))
    return out, ("triplets" if negative else "pairs")


def _float_feature():
    from datasets import Value

    return Value("float32")


def train(spec: Spec) -> dict:
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import losses as st_losses
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    base = spec.options["base"]
    train_ds, val_ds = load_splits(spec)
    train_ds, shape = select_columns(train_ds, spec)
    val_ds = select_columns(val_ds, spec)[0] if val_ds is not None else None
    model = SentenceTransformer(base, device="cpu" if spec.use_cpu else None)
    model.max_seq_length = int(spec.opt("max_length"))
    lora = spec.opt("lora") is not None
    if lora:
        # transformers 5.24's add_adapter (behind SentenceTransformer.add_adapter) demands peft>=0.22: wrap
        # the underlying transformers model with peft directly.
        from peft import get_peft_model

        model[0].model = get_peft_model(model[0].model, lora_config(spec, "FEATURE_EXTRACTION"))
    loss_name = spec.options.get("loss") or ("cosent" if shape == "labelled" else "mnrl")
    if loss_name not in LOSSES:
        raise ValueError(f"unknown embedding loss {loss_name!r}; expected one of {sorted(LOSSES)}")
    loss = getattr(st_losses, LOSSES[loss_name])(model)
    args = SentenceTransformerTrainingArguments(**training_kwargs(spec, val_ds is not None, "embedding"))
    trainer = with_token_counter(SentenceTransformerTrainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        loss=loss,
        callbacks=callbacks(spec, val_ds is not None),
    )

    def save():
        if not lora:
            trainer.save_model(spec.output_dir)
            return
        if is_main():
            # Plain sentence-transformers cannot load an adapter folder with these pins (transformers' adapter
            # loading demands peft>=0.22), so the root holds the merged model and adapter/ the LoRA adapter.
            peft_model = model[0].model
            peft_model.save_pretrained(os.path.join(spec.output_dir, "adapter"))
            model[0].model = peft_model.merge_and_unload()
            model.save(spec.output_dir)

    return train_and_finish(spec, trainer, val_ds is not None, save)
