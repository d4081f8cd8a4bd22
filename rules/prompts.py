"""Prompt rules: send each row to an LLM and add the generation as a column.

    tiny = llm("smollm2-135m-instruct")
    rule("tweets", input="targets/abstracts.parquet", output="targets/tweets.parquet",
         run=rules.prompt(llm=tiny, input_column="abstract", output_column="tweet",
                          template="Summarize as a tweet: {{ abstract }}", max_tokens=64))

Rows stream through in chunks; every request goes through the row cache, so a rerun
only calls the model for rows whose prompt, params or model changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.llm.handle import GENERATION_KEYS, LLM

CHUNK_ROWS = 20_000


class PromptStep(Action):
    """Base of every rule that prompts a model row by row (see `prompt`)."""

    kind = "prompt"
    version = 1

    def __init__(self, llm: LLM, input_column: str | None = None, output_column: str = "output",
                 template: str | None = None, system: str | None = None, seed: int | None = 0,
                 chunk_rows: int = CHUNK_ROWS, **generation: Any):
        if not isinstance(llm, LLM):
            raise TypeError(f"llm= must be a model made with llm(...), got {type(llm).__name__}")
        unknown = set(generation) - GENERATION_KEYS
        if unknown:
            raise TypeError(f"unknown argument(s) {', '.join(sorted(unknown))}; generation params are "
                            f"{', '.join(sorted(GENERATION_KEYS))}")
        self.llm = llm
        self.input_column = input_column
        self.output_column = output_column
        self.template = template
        self.system = system
        self.seed = seed
        self.chunk_rows = chunk_rows
        self.generation = {**llm.generation, **generation}
        self._compiled: Any = None

    # -- identity ----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"input_column": self.input_column, "output_column": self.output_column,
                "template": self.template, "system": self.system, "seed": self.seed,
                "generation": self.generation}

    def model_identity(self) -> Any:
        return self.llm.identity()

    def extra_inputs(self) -> list[str]:
        """A model trained by this Dreamfile is an input of the rule (an edge in the DAG)."""
        return [self.llm.target] if self.llm.target else []

    # -- prompts -----------------------------------------------------------------------------
    def template_columns(self) -> list[str] | None:
        """The columns the template reads (None: no template)."""
        if self.template is None:
            return None
        from jinja2 import meta

        env = _jinja()
        self._compiled = env.from_string(self.template)
        return sorted(meta.find_undeclared_variables(env.parse(self.template)))

    def messages(self, user: Any) -> list[dict[str, str]]:
        """Chat messages for one row: a system prompt (if any) and the user turn, or the row's own messages."""
        if isinstance(user, str):
            messages = [{"role": "user", "content": user}]
        else:
            messages = [{"role": m["role"], "content": m["content"]} for m in user]
        if self.system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def user_turns(self, batch: Any, columns: list[str] | None) -> list[Any]:
        """The user message (or message list) of every row in a record batch."""
        if columns is None:
            if self.input_column is None:
                raise DreamError("give input_column= or template=")
            values = batch.column(self.input_column).to_pylist()
            return [v if isinstance(v, (str, list)) else str(v) for v in values]
        values = {c: batch.column(c).to_pylist() for c in columns}
        render = self._compiled.render
        return [render(**{c: values[c][i] for c in columns}) for i in range(batch.num_rows)]

    def seeds(self, start_row: int, n: int) -> list[int | None]:
        """The seed of each row (the same seed for every row by default)."""
        return [self.seed] * n

    # -- running -----------------------------------------------------------------------------
    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.llm.generate import generate
        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        columns = self.template_columns()
        self._check_columns(source, columns, ctx)

        def chunks() -> Iterator[Any]:
            start = 0
            for batch in iter_batches(source, self.chunk_rows):
                turns = self.user_turns(batch, columns)
                gens = generate(ctx, self.llm, turns, self.generation, self.seeds(start, batch.num_rows),
                                self.messages, self.system)
                start += batch.num_rows
                texts = gens.column("text")
                if texts.type != pa.string():  # a cast loads pyarrow.compute (and pandas): only when needed
                    texts = texts.cast(pa.string())
                yield pa.Table.from_batches([batch]).append_column(self.output_column, texts)

        ctx.write_batches(next(iter(ctx.outputs)), chunks())
        return None

    def _check_columns(self, source: str, columns: list[str] | None, ctx: JobContext) -> None:
        import pyarrow.parquet as pq

        names = pq.read_schema(source).names
        needed = columns if columns is not None else [self.input_column]
        missing = [c for c in needed if c not in names]
        if missing:
            raise DreamError(f"rule {ctx.job.rule.name!r}: {source} has no column {', '.join(map(repr, missing))}"
                             f" (it has {', '.join(names)})", ctx.job.rule.where)


def _jinja() -> Any:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def prompt(llm: LLM, input_column: str | None = None, output_column: str = "output", template: str | None = None,
           **options: Any) -> PromptStep:
    """Send each row's `input_column` (or the rendered Jinja `template`) to `llm`; add `output_column`.

    Options: system=, seed=, temperature=, top_p=, max_tokens=, stop=, chunk_rows=.
    Example: `rules.prompt(llm=tiny, input_column="question", output_column="answer", max_tokens=64)`.
    """
    return PromptStep(llm, input_column, output_column, template, **options)
