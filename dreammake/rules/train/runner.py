"""The part every kind shares once its trainer is built: train (resuming), evaluate, save, summarise."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .common import (
    check_strategy,
    finish_output,
    last_checkpoint,
    summarise,
    total_tokens,
    write_result,
)
from .spec import Spec, is_main

log = logging.getLogger(__name__)


def save_hf(trainer, spec: Spec, tokenizer) -> None:
    """Final model: adapter (+ base reference) by default, merged weights when options['merge']."""
    out = spec.output_dir
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "peft_config")
    if is_peft and spec.opt("merge"):
        if is_main():
            merged = model.merge_and_unload()
            merged.save_pretrained(out)
    else:
        trainer.save_model(out)
    if is_main() and tokenizer is not None:
        tokenizer.save_pretrained(out)


def train_and_finish(
    spec: Spec,
    trainer,
    has_eval: bool,
    save: Callable[[], None],
) -> dict:
    check_strategy(spec, trainer)
    resume = last_checkpoint(spec.checkpoint_dir)
    if resume:
        log.warning("resuming from %s", resume)
    output = trainer.train(resume_from_checkpoint=resume)
    eval_loss = None
    if has_eval:
        # transformers evaluates at the final step by itself; only evaluate again when it did not.
        final = [
            r["eval_loss"]
            for r in trainer.state.log_history
            if "eval_loss" in r and r.get("step") == trainer.state.global_step
        ]
        eval_loss = final[-1] if final else trainer.evaluate().get("eval_loss")
    tokens = total_tokens(trainer)
    summary, rows = summarise(trainer, output, spec, resume, eval_loss, tokens)
    os.makedirs(spec.output_dir, exist_ok=True)
    save()
    if is_main():
        finish_output(spec, trainer, summary, rows)
        write_result(spec, summary)
    trainer.accelerator.wait_for_everyone()
    return summary
