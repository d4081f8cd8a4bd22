"""Generation for prompt rules: cache lookup, model calls for the misses only (each response spooled as it
arrives), commits, spend."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dreammake.errors import DreamError
from dreammake.llm.base import LLMError, Request, Response
from dreammake.llm.cache import SPOOL_DIR, KeyMaker, RowCache

if TYPE_CHECKING:
    import pyarrow as pa

    from dreammake.actions import JobContext
    from dreammake.llm.handle import LLM
    from dreammake.llm.remote import RemoteGeneration

Turn = Any  # a user message (str) or a full list of chat messages
STAT_KEYS = ("llm_calls", "llm_cached", "prompt_tokens", "completion_tokens", "cost_usd")
SERVED_STATS = ("served_models", "system_fingerprints")  # lists of the distinct values behind a job's rows
SERVED_COLUMNS = ("served_model", "system_fingerprint")  # the row cache's columns they come from


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


def generate(ctx: JobContext, model: LLM, turns: Sequence[Turn], params: dict[str, Any],
             seeds: Sequence[int | None], to_messages: Callable[[Turn], list[dict[str, str]]],
             system: str | None = None, samples: Sequence[int] | None = None,
             what: str = "generating") -> pa.Table:
    """One generation per turn, as an Arrow table (text, finish_reason) in the turns' order.

    Cached rows come from the row cache in one query; only the misses are built into requests
    (`to_messages`) and sent to the model, and their results are committed as they arrive.
    `system` is the fixed system prompt `to_messages` adds to plain-text turns (part of the key).
    """
    if ctx.state is None:
        raise DreamError(f"rule {ctx.job.rule.name!r}: prompt rules need the project state")
    samples = samples if samples is not None else [0] * len(turns)
    model_hash, keys = request_keys(model, turns, params, seeds, system, samples)
    cache = RowCache(ctx.state.cache_db, spool_path(str(ctx.state.dir), ctx.job.rule.name, ctx.job.name))
    try:
        found = cache.lookup(keys)
        texts = found.column("text")
        hits = len(keys) - texts.null_count
        _add_stats(ctx, llm_cached=hits)
        _add_served(ctx, *(found.column(c).unique().to_pylist() for c in SERVED_COLUMNS))
        found = found.select(["text", "finish_reason"])
        if hits == len(keys):
            return found
        fresh: dict[str, tuple[str, str | None]] = {}
        first_miss: dict[str, int] = {}
        for i, text in enumerate(texts.to_pylist()):
            if text is None and keys[i] not in first_miss:
                first_miss[keys[i]] = i
        misses = list(first_miss.items())
        _call_model(ctx, model, cache, model_hash, misses, [to_messages(turns[i]) for _, i in misses], params,
                    seeds, samples, fresh, what)
    finally:
        cache.close()
    import pyarrow as pa

    text_list = texts.to_pylist()
    finish_list = found.column("finish_reason").to_pylist()
    for i, k in enumerate(keys):
        if text_list[i] is None:
            text_list[i], finish_list[i] = fresh[k]
    return pa.table({"text": pa.array(text_list, pa.string()), "finish_reason": pa.array(finish_list, pa.string())})


def request_keys(model: LLM, turns: Sequence[Turn], params: dict[str, Any], seeds: Sequence[int | None],
                 system: str | None, samples: Sequence[int]) -> tuple[str, list[str]]:
    """The model's cache identity hash and the row-cache key of every turn."""
    model_hash = model.cache_identity_hash()
    key = KeyMaker(model_hash, params, system).key
    return model_hash, [key(t, s, i) for t, s, i in zip(turns, seeds, samples)]


def spool_path(state_dir: str, rule: str, job_name: str) -> str:
    """The spool file of a job: `.dreammake/spool/<rule>-<hash of the job name>.jsonl`."""
    from dreammake.fingerprint import digest

    return os.path.join(state_dir, SPOOL_DIR, f"{rule}-{digest(job_name)[:12]}.jsonl")


def shard_spool(state_dir: str, rule: str, job_name: str, shard: int) -> str:
    """The spool of a job's generation worker `shard`: `.dreammake/spool/<rule>-<hash>.shard<N>.jsonl`."""
    base = spool_path(state_dir, rule, job_name)
    return f"{base[:-len('.jsonl')]}.shard{shard}.jsonl"


def shard_count(resources: dict[str, Any]) -> int:
    """How many generation workers a rule's resources ask for (`shards`, at least 1)."""
    return max(1, int(resources.get("shards") or 1))


def _remote(ctx: JobContext, model: LLM) -> RemoteGeneration | None:
    """The job's generation workers, when its misses go to workers: a local model, and the executor runs it in
    workers always (Slurm), or the rule asks for shards, or the executor assigned the job GPUs. Else None."""
    starter = ctx.workers
    if starter is None or ctx.state is None or not model.local:
        return None
    shards = shard_count(ctx.job.rule.resources)
    if not (starter.always or shards > 1 or ctx.gpus):
        return None
    from dreammake.fingerprint import digest
    from dreammake.llm.remote import REMOTE_DIR, RemoteGeneration, Session

    job = ctx.job
    state_dir = str(ctx.state.dir)

    def make() -> RemoteGeneration:
        folder = os.path.join(state_dir, REMOTE_DIR, f"{job.rule.name}-{digest(job.name)[:12]}")
        spools = [shard_spool(state_dir, job.rule.name, job.name, i) for i in range(shards)]
        session = Session(os.path.dirname(state_dir), ctx.dreamfile, job.rule.name, dict(job.wildcards), shards,
                          spools, int(job.rule.resources.get("gpus") or 0))
        return RemoteGeneration(folder, session, starter, job.rule.where)

    return ctx.keep("remote-generation", make)


def _call_model(ctx: JobContext, model: LLM, cache: RowCache, model_hash: str, misses: list[tuple[str, int]],
                messages: list[list[dict[str, str]]], params: dict[str, Any], seeds: Sequence[int | None],
                samples: Sequence[int], fresh: dict[str, tuple[str, str | None]], what: str) -> None:
    rule = ctx.job.rule
    budget = ctx.budget
    if budget is not None and budget.exhausted:
        raise DreamError(f"rule {rule.name!r}: --max-cost ${budget.max_cost:g} already reached; "
                         f"{len(misses)} row(s) not generated", rule.where)
    advance = ctx.track(what, len(misses))
    cancel = threading.Event()
    spend = {"llm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0}
    over_budget = False

    def take(key: str, response: Response) -> None:
        nonlocal over_budget
        fresh[key] = (response.text, response.finish_reason)
        if response.served_model or response.system_fingerprint:
            _add_served(ctx, [response.served_model], [response.system_fingerprint])
        spend["llm_calls"] += 1
        spend["prompt_tokens"] += response.prompt_tokens
        spend["completion_tokens"] += response.completion_tokens
        if response.cost_usd:
            spend["cost_usd"] += response.cost_usd
            if budget is not None and budget.add(response.cost_usd):
                over_budget = True
                cancel.set()
        advance(1)

    def on_result(index: int, response: Response) -> None:
        key = misses[index][0]
        cache.add(key, model_hash, response)
        take(key, response)
        cache.commit_if_due()

    watcher = _forward(ctx.cancel, cancel)
    remote = _remote(ctx, model)
    try:
        if remote is not None:
            rows = [(key, m, seeds[i], samples[i]) for m, (key, i) in zip(messages, misses)]
            remote.run(model_hash, params, rows, cache.absorb, lambda r: take(r["key"], _response(r)), cancel)
        else:
            backend = model.backend()
            if hasattr(backend, "notify"):  # API backends say when answers are long in coming
                backend.notify = lambda text: ctx.log(f"rule {rule.name!r}: {text}")
            requests = [Request(tuple(m), params, seeds[i], samples[i]) for m, (_, i) in zip(messages, misses)]
            backend.generate(requests, on_result, cancel)
    except LLMError as exc:
        raise DreamError(f"rule {rule.name!r}: {exc}", rule.where) from None
    finally:
        watcher.set()
        cache.commit()
        _add_stats(ctx, **spend)
    missing = sum(1 for k, _ in misses if k not in fresh)
    if over_budget:
        raise DreamError(f"rule {rule.name!r}: stopped at --max-cost ${budget.max_cost:g} (spent "
                         f"${budget.spent:.4f}); {missing} row(s) left, rerun to continue", rule.where)
    if missing:
        if ctx.cancel.is_set():
            raise DreamError(f"rule {rule.name!r}: interrupted with {missing} row(s) left", rule.where)
        raise DreamError(f"rule {rule.name!r}: the model returned no result for {missing} row(s)", rule.where)


def _response(record: dict[str, Any]) -> Response:
    """A spooled answer as a Response."""
    return Response(record.get("text") or "", record.get("finish_reason"), record.get("prompt_tokens") or 0,
                    record.get("completion_tokens") or 0, record.get("cost_usd") or 0.0,
                    record.get("latency_s") or 0.0, record.get("served_model"), record.get("system_fingerprint"))


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


def _add_served(ctx: JobContext, models: Sequence[str | None], fingerprints: Sequence[str | None]) -> None:
    """Remember the distinct served models and system fingerprints behind a job's rows (`served_models`,
    `system_fingerprints` in its stats: the target record, cards and `dreammake status`)."""
    for key, values in zip(SERVED_STATS, (models, fingerprints)):
        seen = set(ctx.stats.get(key, ())) | {v for v in values if v}
        if seen:
            ctx.stats[key] = sorted(seen)


def _add_stats(ctx: JobContext, **amounts: float) -> None:
    for key in STAT_KEYS:
        ctx.stats[key] = ctx.stats.get(key, 0) + amounts.get(key, 0)
