"""`dreammake preview RULE`: a prompt rule run on its first N input rows, printed with the exact messages sent
and the generations, without writing the target.

The rows go through the row cache like a build's (same keys, same job spool), so the full build later
reuses them for free. `first_rows` is also how the report finds the messages behind a target's first rows:
with `call_model=False` it only reads the cache.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from dreammake.errors import DreamError
from dreammake.graph import Resolver

if TYPE_CHECKING:
    from dreammake.actions import JobContext
    from dreammake.console import Console
    from dreammake.dsl import Workflow
    from dreammake.graph import Job
    from dreammake.rules.prompts import PromptStep
    from dreammake.state import State

TEXT_CELL = 300  # characters of a message or a generation in tab-separated text


@dataclass
class Prompted:
    """One request of a prompt rule: the input row it belongs to, the exact messages, the generation."""

    row: int
    messages: list[dict[str, str]]
    text: str | None  # None: not in the row cache (only when the model was not called)
    cached: bool  # the generation came from the row cache


def prompt_step(job: Job) -> PromptStep | None:
    """The job's prompt step, or None when its rule is not a prompt rule."""
    from dreammake.rules.prompts import PromptStep

    action = job.rule.action
    return action if isinstance(action, PromptStep) else None


def prompt_job(workflow: Workflow, target: str) -> Job:
    """The job of a prompt rule (a rule name or one of its outputs) whose inputs are all built."""
    from dreammake.rules.prompts import PromptStep

    job = Resolver(workflow).request(target)
    if prompt_step(job) is None:
        names = [r.name for r in workflow.rules if isinstance(r.action, PromptStep)]
        kind = "an aggregate" if job.rule.is_phony else f"a {getattr(job.rule.action, 'kind', 'function')}"
        hint = "prompt rules here: " + ", ".join(names) if names else "this Dreamfile has no prompt rule"
        raise DreamError(f"rule {job.rule.name!r} is {kind} rule, not a prompt rule", hint=hint)
    missing = [p for p in job.input_paths if not os.path.exists(p)]
    if missing:
        raise DreamError(f"rule {job.rule.name!r} needs {', '.join(missing)}, not built yet",
                         hint=f"run `dreammake {' '.join(missing)}` first")
    return job


def job_context(job: Job, state: State, root: str, console: Console | None = None) -> JobContext:
    """A context for running a prompt step outside a build: no outputs, the project's row cache."""
    from dreammake.actions import JobContext, work_path

    log = (lambda text: console.line("info", text)) if console else (lambda text: None)
    return JobContext(job, {}, work_path(root, job), threading.Event(), "", state=state, log=log,
                      progress=console.task if console else None)


def first_rows(step: PromptStep, ctx: JobContext, n: int, call_model: bool = True) -> list[Prompted]:
    """The requests of the step's first `n` input rows, by row (a rule that asks twice per row, like a
    pairwise judge with swaps, gives two per row). With `call_model`, misses are generated and cached as a
    build would; without it, they stay misses (text None)."""
    if n <= 0:
        return []
    step = copy.copy(step)  # the Dreamfile's step keeps its chunk size
    step.chunk_rows = min(n, step.chunk_rows)  # not part of any key: the first chunk is the first n rows
    generate = step.generate
    found: list[Prompted] = []

    def recording(ctx: JobContext, turns: Sequence[Any], seeds: Sequence[int | None],
                  samples: Sequence[int] | None = None) -> Any:
        import pyarrow as pa

        cached = _lookup(ctx, step, turns, seeds, samples)
        texts = cached
        if call_model and None in cached:
            texts = generate(ctx, turns, seeds, samples).column("text").to_pylist()
        found.extend(Prompted(i, step.messages(t), text, hit is not None)
                     for i, (t, text, hit) in enumerate(zip(turns, texts, cached)))
        return pa.table({"text": pa.array([t or "" for t in texts], pa.string()),
                         "finish_reason": pa.array([None] * len(texts), pa.string())})

    step.generate = recording  # type: ignore[method-assign]
    chunks = step.chunks(ctx)
    try:
        next(chunks, None)
    finally:
        chunks.close()
    return sorted(found, key=lambda p: p.row)  # (stable) a row's requests together, in the order asked


def _lookup(ctx: JobContext, step: PromptStep, turns: Sequence[Any], seeds: Sequence[int | None],
            samples: Sequence[int] | None) -> list[str | None]:
    """The cached generation of each turn (None: a miss), by the keys `PromptStep.generate` uses."""
    from dreammake.llm.cache import RowCache
    from dreammake.llm.generate import request_keys, spool_path

    _, keys = request_keys(step.llm, turns, step.generation, seeds, step.system,
                           samples if samples is not None else [0] * len(turns))
    cache = RowCache(ctx.state.cache_db, spool_path(str(ctx.state.dir), ctx.job.rule.name, ctx.job.name))
    try:
        return cache.lookup(keys).column("text").to_pylist()
    finally:
        cache.close()


def print_rows(rows: list[Prompted], stream: TextIO, as_json: bool = False, rich: bool | None = None) -> None:
    """Write the requests: JSON lines, a rich table (default on a terminal) or tab-separated text."""
    from dreammake.show import cell

    if as_json:
        for row in rows:
            record = {**asdict(row), "generation": row.text}
            del record["text"]
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    if rich is None:
        rich = stream.isatty() and os.environ.get("TERM") != "dumb"
    if not rich:
        stream.write("row\tfrom\tmessages\tgeneration\n")
        for row in rows:
            messages = " ".join(f"[{m['role']}] {m['content']}" for m in row.messages)
            stream.write(f"{row.row}\t{_source(row)}\t{cell(messages, TEXT_CELL)}\t{cell(row.text, TEXT_CELL)}\n")
        return
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

    view = Table(show_lines=True, highlight=False, expand=True)
    view.add_column("row", justify="right", no_wrap=True)
    view.add_column("messages", ratio=1, overflow="fold")
    view.add_column("generation", ratio=1, overflow="fold")
    for row in rows:  # Text, not markup: a prompt may hold "[brackets]"
        turns = Group(*(Text.assemble((f"{m['role']}: ", "bold cyan"), m["content"]) for m in row.messages))
        view.add_row(Text(f"{row.row}\n{_source(row)}", style="dim"), turns, Text(row.text or ""))
    Console(file=stream, highlight=False).print(view)


def _source(row: Prompted) -> str:
    return "cache" if row.cached else "model" if row.text is not None else "missing"


def summary(job: Job, rows: list[Prompted]) -> str:
    """The line after a preview: how many rows the model answered, and what the build will reuse."""
    fresh = sum(1 for r in rows if not r.cached)
    return (f"{job.name}: {len(rows) - fresh} request(s) from the row cache, {fresh} generated now;"
            f" {', '.join(job.output_paths)} not written — a build reuses these rows")
