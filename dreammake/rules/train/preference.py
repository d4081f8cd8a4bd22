"""Preference kinds: ``dpo`` (TRL DPOTrainer) and ``reward`` (TRL RewardTrainer, 1-logit classifier)."""

from __future__ import annotations

from .common import (
    callbacks,
    ensure_pad_token,
    load_splits,
    lora_config,
    pick_column,
    render_template,
    training_kwargs,
    weight_dtype,
    with_token_counter,
)
from .quantize import load_base
from .runner import save_hf, train_and_finish
from .spec import Spec


def _use_chat(spec: Spec, tokenizer) -> bool:
    return (
        bool(spec.opt("chat_template", True))
        and bool(getattr(tokenizer, "chat_template", None))
        and not spec.options.get("prompt_template")
    )


def to_preference(ds, spec: Spec, tokenizer, require_prompt: bool, with_margin: bool):
    """prompt/chosen/rejected columns -> TRL's preference format (conversational with a chat template)."""
    cols = list(ds.column_names)
    prompt_col = pick_column(
        cols, spec, "prompt_column", ("prompt", "input", "question"), required=require_prompt
    )
    chosen_col = pick_column(cols, spec, "chosen_column", ("chosen",))
    rejected_col = pick_column(cols, spec, "rejected_column", ("rejected",))
    margin_col = (
        pick_column(cols, spec, "margin_column", ("margin",), required=False) if with_margin else None
    )
    chosen_score = (
        pick_column(cols, spec, "chosen_score_column", ("chosen_score",), False) if with_margin else None
    )
    rejected_score = (
        pick_column(cols, spec, "rejected_score_column", ("rejected_score",), False) if with_margin else None
    )
    template = spec.options.get("prompt_template")
    chat = _use_chat(spec, tokenizer)
    system = spec.options.get("system_prompt")

    def convert(row):
        out = {}
        if prompt_col is not None:
            prompt = render_template(template, row, prompt_col) if template else str(row[prompt_col])
            if chat:
                sys_msgs = [{"role": "system", "content": system}] if system else []
                out["prompt"] = sys_msgs + [{"role": "user", "content": prompt}]
            else:
                out["prompt"] = prompt
        for key, col in (("chosen", chosen_col), ("rejected", rejected_col)):
            text = str(row[col])
            out[key] = [{"role": "assistant", "content": text}] if chat and prompt_col is not None else text
        if margin_col is not None:
            out["margin"] = float(row[margin_col])
        elif chosen_score is not None and rejected_score is not None:
            out["margin"] = float(row[chosen_score]) - float(row[rejected_score])
        return out

    return ds.map(convert, remove_columns=cols)


def train_dpo(spec: Spec) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    train_ds, val_ds = load_splits(spec)
    train_ds = to_preference(train_ds, spec, tokenizer, require_prompt=True, with_margin=False)
    val_ds = to_preference(val_ds, spec, tokenizer, True, False) if val_ds is not None else None
    model = load_base(AutoModelForCausalLM, base, spec)
    lora = spec.opt("lora") is not None
    ref_model = None
    if not lora:  # full fine-tune: frozen copy as the reference (LoRA uses the adapter-disabled base)
        ref_model = AutoModelForCausalLM.from_pretrained(base, dtype=weight_dtype(spec))
    args = DPOConfig(
        **training_kwargs(spec, val_ds is not None, "dpo"),
        max_length=int(spec.opt("max_length")),
        beta=float(spec.opt("beta", 0.1)),
        dataset_num_proc=None,
    )
    trainer = with_token_counter(DPOTrainer)(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=lora_config(spec, "CAUSAL_LM") if lora else None,
        callbacks=callbacks(spec, val_ds is not None),
    )
    return train_and_finish(spec, trainer, val_ds is not None, lambda: save_hf(trainer, spec, tokenizer))


def train_reward(spec: Spec) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    train_ds, val_ds = load_splits(spec)
    train_ds = to_preference(train_ds, spec, tokenizer, require_prompt=False, with_margin=True)
    val_ds = to_preference(val_ds, spec, tokenizer, False, True) if val_ds is not None else None
    model = load_base(AutoModelForSequenceClassification, base, spec, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = spec.opt("lora") is not None
    args = RewardConfig(
        **training_kwargs(spec, val_ds is not None, "reward"),
        max_length=int(spec.opt("max_length")),
        dataset_num_proc=None,
    )
    trainer = with_token_counter(RewardTrainer)(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=lora_config(spec, "SEQ_CLS") if lora else None,
        callbacks=callbacks(spec, val_ds is not None),
    )
    return train_and_finish(spec, trainer, val_ds is not None, lambda: save_hf(trainer, spec, tokenizer))
