"""Rule kinds, used in a Dreamfile as `rules.<kind>(...)`: the built-ins and those of installed plugins.

A kind is a name and a factory returning an `Action` (`dreammake.actions`). The built-ins register here
by lazy reference, the way a plugin does, so each family's module is imported only when a Dreamfile
first uses one of its kinds. A plugin registers with `register_kind("my_kind", factory)` (the factory or
a ``"module:attribute"`` reference) or declares an entry point in the group ``dreammake.rule_kinds``.
Every kind is called through `suggest.checked`: a mistyped keyword fails at its Dreamfile line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dreammake.plugins import Registry, UnknownName

KINDS: Registry[Callable[..., Any]] = Registry("dreammake.rule_kinds", "rule kind", "kinds")


def register_kind(name: str, factory: Callable[..., Any] | str) -> None:
    """Make `rules.<name>(...)` call `factory` (an `Action` factory, or a ``"module:attribute"`` reference)."""
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"a rule kind's name must be a public identifier, got {name!r}")
    KINDS.register(name, factory)


# the built-in kinds, by the module (in this package) that defines them
for _module, _names in {
    "sources": ["read", "rows", "hf_dataset"],
    "data": ["map", "filter", "select_columns", "rename_columns", "take", "skip", "shuffle", "sort", "dedupe",
             "splits", "shard", "concat", "zip"],
    "prompts": ["prompt", "process_with_prompt", "few_shot_prompt", "data_from_prompt",
                "data_from_attributed_prompt"],
    "judges": ["filter_with_prompt", "rank_with_prompt", "judge_pairs", "judge_generation_pairs"],
    "retrieval": ["embed", "rag_prompt", "few_shot_prompt_with_retrieval", "retrieve", "cosine_similarity"],
    "task_model": ["run_task_model"],
    "finetune_api": ["train_openai_finetune"],
    "trainers": ["train_sft", "train_dpo", "train_reward", "train_grpo", "train_classifier", "train_embedding"],
}.items():
    for _name in _names:
        register_kind(_name, f"{__name__}.{_module}:{_name}")
del _module, _names, _name


def __getattr__(name: str) -> Any:
    if name.startswith("_"):  # dunder probes (copy, pickle, inspect) never name a kind
        raise AttributeError(name)
    try:
        factory = KINDS.get(name)
    except UnknownName as exc:
        raise AttributeError(str(exc)) from None
    known = _CHECKED.get(name)
    if known is None or known[0] is not factory:  # a Dreamfile's loop asks once per rule: wrap each kind once
        from dreammake.suggest import checked

        known = _CHECKED[name] = (factory, checked(factory, f"rules.{name}()"))
    return known[1]


_CHECKED: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {}  # kind -> (factory, keyword-checked factory)


def __dir__() -> list[str]:
    return KINDS.names()
