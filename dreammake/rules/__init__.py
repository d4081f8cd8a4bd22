"""Built-in rule kinds, used in a Dreamfile as `rules.<kind>(...)`.

Each family lives in its own module and is imported only when first used, so a
Dreamfile that uses none of them loads fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from dreammake.suggest import closest

# kind name -> module (relative to this package) that defines it
_KINDS: dict[str, str] = {
    **dict.fromkeys(["read", "rows", "hf_dataset"], "sources"),
    **dict.fromkeys(["map", "filter", "select_columns", "rename_columns", "take", "skip", "shuffle", "sort",
                     "dedupe", "splits", "shard", "concat", "zip"], "data"),
    **dict.fromkeys(["prompt", "process_with_prompt", "few_shot_prompt", "data_from_prompt",
                     "data_from_attributed_prompt"], "prompts"),
    **dict.fromkeys(["filter_with_prompt", "rank_with_prompt", "judge_pairs", "judge_generation_pairs"], "judges"),
    **dict.fromkeys(["embed", "rag_prompt", "few_shot_prompt_with_retrieval"], "retrieval"),
    **dict.fromkeys(["retrieve", "cosine_similarity"], "retrieval"),
    "run_task_model": "task_model",
    "train_openai_finetune": "finetune_api",
    **dict.fromkeys(["train_sft", "train_dpo", "train_reward", "train_grpo", "train_classifier", "train_embedding"],
                    "trainers"),
}


def __getattr__(name: str) -> Any:
    module = _KINDS.get(name)
    if module is None:
        match = closest(name, _KINDS)
        if match is not None:
            raise AttributeError(f"dreammake has no rule kind {name!r} (did you mean {match}?)")
        raise AttributeError(f"dreammake has no rule kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}")
    from dreammake.suggest import checked

    return checked(getattr(importlib.import_module(f"{__name__}.{module}"), name), f"rules.{name}()")


def __dir__() -> list[str]:
    return sorted(_KINDS)
