"""GRPO (TRL GRPOTrainer) with a reward from a user Python function or a trained reward-model folder.

The user function is called as ``fn(prompts=..., completions=..., **columns) -> list[float]`` where
``completions`` are plain strings (the assistant text, also for chat prompts) and ``columns`` holds the other
dataset columns, one list entry per completion.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys

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


def load_reward_fn(ref: dict):
    if ref.get("dreamfile"):
        from dreammake.config_env import inherited_config
        from dreammake.dsl import load

        return load(ref["dreamfile"], inherited_config()).scope[ref["qualname"]]
    obj = None
    if ref.get("module") and ref["module"] != "__main__":
        try:
            obj = importlib.import_module(ref["module"])
        except ImportError:
            obj = None
    if obj is None:
        path = ref.get("file")
        if not path or not os.path.exists(path):
            raise ImportError(f"cannot import reward function {ref}")
        name = f"_dreammake_reward_{abs(hash(path))}"
        spec = importlib.util.spec_from_file_location(name, path)
        obj = importlib.util.module_from_spec(spec)
        sys.modules[name] = obj
        spec.loader.exec_module(obj)
    for part in ref["qualname"].split("."):
        obj = getattr(obj, part)
    return obj


def _text(completion) -> str:
    if isinstance(completion, list):  # conversational: list of messages
        return "".join(str(m.get("content", "")) for m in completion if m.get("role") == "assistant")
    return str(completion)


def wrap_user_fn(fn):
    def reward(prompts, completions, **kwargs):
        values = fn(prompts=prompts, completions=[_text(c) for c in completions], **kwargs)
        return [float(v) if v is not None else None for v in values]

    reward.__name__ = getattr(fn, "__name__", "reward_fn")
    return reward


def load_reward_model(folder: str, dtype):
    """A reward-model folder (full or LoRA adapter) -> (model, tokenizer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    ensure_pad_token(tok)
    if os.path.exists(os.path.join(folder, "adapter_config.json")):
        from peft import PeftModel

        from dreammake.llm.models import checkpoint_for
        from dreammake.targets import CheckpointFolder

        # the Dreamfile's spec, resolved offline (adapter_config.json names the Hub id: see trainers.name_base)
        base_spec = CheckpointFolder(folder).adapter_base()
        base = AutoModelForSequenceClassification.from_pretrained(
            str(checkpoint_for(base_spec)), num_labels=1, dtype=dtype
        )
        base.config.pad_token_id = tok.pad_token_id
        model = PeftModel.from_pretrained(base, folder).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=dtype)
    model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


def train(spec: Spec) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    base = spec.options["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"
    train_ds, val_ds = load_splits(spec)
    chat = (
        bool(spec.opt("chat_template", True))
        and bool(getattr(tokenizer, "chat_template", None))
        and not spec.options.get("prompt_template")
    )
    prompt_col = pick_column(
        list(train_ds.column_names), spec, "prompt_column", ("prompt", "input", "question")
    )
    template = spec.options.get("prompt_template")
    system = spec.options.get("system_prompt")

    def convert(row):
        text = render_template(template, row, prompt_col) if template else str(row[prompt_col])
        if chat:
            msgs = [{"role": "system", "content": system}] if system else []
            return {"prompt": msgs + [{"role": "user", "content": text}]}
        return {"prompt": text}

    def prepare(ds):
        drop = [prompt_col] if prompt_col != "prompt" else []
        return ds.map(convert, remove_columns=drop)

    train_ds = prepare(train_ds)
    val_ds = prepare(val_ds) if val_ds is not None else None

    reward_funcs, reward_tokenizers = [], []
    if spec.extra.get("reward_fn"):
        reward_funcs.append(wrap_user_fn(load_reward_fn(spec.extra["reward_fn"])))
        reward_tokenizers.append(None)
    if spec.options.get("reward_model"):
        rm, rm_tok = load_reward_model(spec.options["reward_model"], weight_dtype(spec))
        reward_funcs.append(rm)
        reward_tokenizers.append(rm_tok)

    num_generations = int(spec.opt("num_generations", 4))
    kw = training_kwargs(spec, val_ds is not None, "grpo")
    kw["remove_unused_columns"] = False  # extra dataset columns are handed to the reward function
    # The generation batch must hold whole groups of num_generations completions per prompt, and whole
    # optimizer steps: batch_size completions over all processes.
    generation_batch = math.lcm(int(spec.opt("batch_size")), num_generations)
    if val_ds is not None:
        kw["per_device_eval_batch_size"] = num_generations
    args = GRPOConfig(
        **kw,
        num_generations=num_generations,
        generation_batch_size=int(spec.opt("generation_batch_size", generation_batch)),
        max_completion_length=int(spec.opt("max_completion_length", 64)),
        temperature=float(spec.opt("temperature", 1.0)),
        beta=float(spec.opt("beta", 0.0)),
        log_completions=False,
    )
    model = load_base(AutoModelForCausalLM, base, spec)
    trainer = with_token_counter(GRPOTrainer)(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizers,
        peft_config=lora_config(spec, "CAUSAL_LM") if spec.opt("lora") is not None else None,
        callbacks=callbacks(spec, val_ds is not None),
    )
    return train_and_finish(spec, trainer, val_ds is not None, lambda: save_hf(trainer, spec, tokenizer))
