"""Generation for prompt rules: cache lookup, model calls for the misses only, batched commits, spend."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dreammake.errors import DreamError
from dreammake.llm.base import LLMError, Request, Response
from dreammake.llm.cache import KeyMaker, RowCache

if TYPE_CHECKING:
    from dreammake.actions import JobContext
    from dreammake.llm.handle import LLM

Messages = Sequence[dict[str, str]]
STAT_KEYS = ("llm_calls", "llm_cached", "prompt_tokens", "completion_tokens", "cost_usd")


class Budget:
    """`--max-cost`: the spend of this run across all jobs; generation stops once it is reached."""

    def __init__(self, max_cost_usd: float | None):
        self.max_cost = max_cost_usd
        self.spent = 0.0
        self._lock = threading.Lock()

    def add(self, cost: float) -> bool:
        """Record spend; True when the limit is reached."""
        with self._lock:
            self.spent += cost
            return self.max_cost is not None and self.spent >= self.max_cost

    @property
    def exhausted(self) -> bool:
        return self.max_cost is not None and self.spent >= self.max_cost


@dataclass
class Generation:
    """One generated text per requested row (cached or fresh)."""

    text: str
    finish_reason: str | None


def generate(ctx: JobContext, model: LLM, prompts: Sequence[Messages], params: dict[str, Any],
             seeds: Sequence[int | None], samples: Sequence[int] | None = None,
             what: str = "generating") -> list[Generation]:
    """Texts for every prompt: cached rows come from the cache, the rest from the model, committed as they arrive."""
    if ctx.state is None:
        raise DreamError(f"rule {ctx.job.rule.name!r}: prompt rules need the project state")
    samples = samples if samples is not None else [0] * len(prompts)
    model_hash = model.identity_hash()
    maker = KeyMaker(model_hash, params)
    keys = [maker.key(m, s, i) for m, s, i in zip(prompts, seeds, samples)]
    cache = RowCache(ctx.state.db)
    try:
        found = cache.lookup(keys)
        first_miss: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key not in found and key not in first_miss:
                first_miss[key] = i
        _add_stats(ctx, llm_cached=sum(1 for k in keys if k in found))
        if first_miss:
            _call_model(ctx, model, cache, model_hash, [(k, i) for k, i in first_miss.items()], prompts, params,
                        seeds, samples, found, what)
    finally:
        cache.close()
    return [Generation(found[k][0], found[k][1]) for k in keys]


def _call_model(ctx: JobContext, model: LLM, cache: RowCache, model_hash: str, misses: list[tuple[str, int]],
                prompts: Sequence[Messages], params: dict[str, Any], seeds: Sequence[int | None],
                samples: Sequence[int], found: dict[str, tuple[Any, ...]], what: str) -> None:
    rule = ctx.job.rule
    budget = ctx.budget
    if budget is not None and budget.exhausted:
        raise DreamError(f"rule {rule.name!r}: --max-cost ${budget.max_cost:g} already reached; "
                         f"{len(misses)} row(s) not generated", rule.where)
    requests = [Request(tuple(prompts[i]), params, seeds[i], samples[i]) for _, i in misses]
    advance = ctx.track(what, len(requests))
    cancel = threading.Event()
    over_budget = False

    def on_result(index: int, response: Response) -> None:
        nonlocal over_budget
        key = misses[index][0]
        cache.add(key, model_hash, response)
        found[key] = (response.text, response.finish_reason, response.prompt_tokens, response.completion_tokens,
                      response.cost_usd)
        _add_stats(ctx, llm_calls=1, prompt_tokens=response.prompt_tokens,
                   completion_tokens=response.completion_tokens, cost_usd=response.cost_usd)
        if budget is not None and budget.add(response.cost_usd):
            over_budget = True
            cancel.set()
        if ctx.cancel.is_set():
            cancel.set()
        cache.commit_if_due()
        advance(1)

    watcher = _forward(ctx.cancel, cancel)
    try:
        model.backend().generate(requests, on_result, cancel)
    except LLMError as exc:
        raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
    finally:
        watcher.set()
        cache.commit()
    missing = sum(1 for k, _ in misses if k not in found)
    if over_budget:
        raise DreamError(f"rule {rule.name!r}: stopped at --max-cost ${budget.max_cost:g} (spent "
                         f"${budget.spent:.4f}); {missing} row(s) left, rerun to continue", rule.where)
    if missing:
        if ctx.cancel.is_set():
            raise DreamError(f"rule {rule.name!r}: interrupted with {missing} row(s) left", rule.where)
        raise DreamError(f"rule {rule.name!r}: the model returned no result for {missing} row(s)", rule.where)


def _forward(source: threading.Event, target: threading.Event) -> threading.Event:
    """Set `target` when `source` is set (until the returned event is set)."""
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if source.wait(0.2):
                target.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    return done


def _add_stats(ctx: JobContext, **amounts: float) -> None:
    for key, value in amounts.items():
        ctx.stats[key] = ctx.stats.get(key, 0) + value
    for key in STAT_KEYS:
        ctx.stats.setdefault(key, 0)
