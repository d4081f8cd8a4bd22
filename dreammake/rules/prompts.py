"""Prompt rules: send rows to an LLM and add the generations as columns.

    tiny = llm("smollm2-135m-instruct")
    rule("abstracts", output="targets/abstracts.parquet",
         run=rules.data_from_prompt(llm=tiny, n=100, output_column="abstract",
                                    instruction="Write an abstract of an NLP paper.", temperature=1.0))
    rule("tweets", input="targets/abstracts.parquet", output="targets/tweets.parquet",
         run=rules.process_with_prompt(llm=tiny, input_column="abstract", output_column="tweet",
                                       instruction="Summarize this abstract as a tweet."))

Rows stream through in chunks; every request goes through the row cache, so a rerun only
calls the model for rows whose prompt, params or model changed. Templates are Jinja strings
over the row's columns. With `schema=` (a JSON schema dict or a pydantic model class) the
generation is parsed as JSON into columns; rows that fail to parse get a `_parse_error`.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.llm.handle import GENERATION_KEYS, LLM
from dreammake.suggest import check_keywords, did_you_mean

if TYPE_CHECKING:
    from dreammake.graph import Job

from .data import check_columns

CHUNK_ROWS = 20_000


class PromptStep(Action):
    """Base of every rule that prompts a model row by row.

    Subclasses change how rows become user turns (`user_turns`), the seeds and sample indexes,
    and how generations become output columns (`finish`).
    """

    kind = "prompt"
    version = 1
    needs_state = True  # the row cache
    shardable = True  # its misses can go to N generation workers (`shards=N`; dreammake.llm.remote)

    def __init__(self, llm: LLM, input_column: str | None = None, output_column: str = "output",
                 template: str | None = None, system: str | None = None, seed: int | None = 0,
                 schema: Any = None, chunk_rows: int = CHUNK_ROWS, **generation: Any):
        if not isinstance(llm, LLM):
            raise TypeError(f"llm= must be a model made with llm(...), got {type(llm).__name__}")
        check_keywords(f"rules.{self.kind}()", generation, GENERATION_KEYS | _step_options(type(self)))
        self.llm = llm
        self.input_column = input_column
        self.output_column = output_column
        self.template = template
        self.system = system
        self.seed = seed
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.generation = {**llm.generation, **generation}
        self._compiled: Any = None

    # -- identity ----------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"input_column": self.input_column, "output_column": self.output_column, "template": self.template,
                "system": self.system, "seed": self.seed, "generation": self.generation,
                "schema": json_schema(self.schema)}

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
        """Chat messages for one turn: the system prompt (if any) and the user turn, or the row's own messages."""
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
            turns = [v if isinstance(v, (str, list)) else str(v) for v in values]
        else:
            values = {c: batch.column(c).to_pylist() for c in columns}
            render = self._compiled.render
            turns = [render(**{c: values[c][i] for c in columns}) for i in range(batch.num_rows)]
        if self.schema is not None:
            suffix = schema_instruction(self.schema)
            turns = [t + suffix if isinstance(t, str) else t for t in turns]
        return turns

    def seeds(self, start_row: int, n: int) -> list[int | None]:
        """The seed of each row (the same seed for every row by default)."""
        return [self.seed] * n

    def required_columns(self, columns: list[str] | None) -> list[str]:
        """Input columns this rule reads."""
        return columns if columns is not None else [c for c in [self.input_column] if c]

    def check_inputs(self, job: Job, schemas: dict[str, list[str]]) -> None:
        """The plan-time check (`dreammake -n`): the columns this rule reads are in its input, when that is already
        built (`schemas`: path → column names of the job's Parquet inputs that exist and will not be rebuilt).
        One line naming the rule and the closest column; the same check runs again when the job starts."""
        if not job.inputs or isinstance(self, (DataFromPrompt, DataFromAttributedPrompt)):  # rows from nothing
            return
        source = job.inputs[0][1]
        names = schemas.get(source)
        if names is None:
            return
        for column in self.required_columns(self.template_columns()):
            if column not in names:
                raise DreamError(f"rule {job.rule.name!r}: {source} has no column {column!r}"
                                 f"{did_you_mean(column, names)} (it has {', '.join(names)})", job.rule.where)

    # -- running -----------------------------------------------------------------------------
    def generate(self, ctx: JobContext, turns: Sequence[Any], seeds: Sequence[int | None],
                 samples: Sequence[int] | None = None) -> Any:
        """Generations (Arrow table: text, finish_reason) for turns, through the row cache."""
        from dreammake.llm.generate import generate

        return generate(ctx, self.llm, turns, self.generation, seeds, self.messages, self.system, samples)

    def finish(self, table: Any, gens: Any) -> Any:
        """The output chunk: the input rows plus the generation column (and parsed columns with `schema=`)."""
        import pyarrow as pa

        texts = gens.column("text")
        if texts.type != pa.string():  # a cast loads pyarrow.compute (and pandas): only when needed
            texts = texts.cast(pa.string())
        table = table.append_column(self.output_column, texts)
        if self.schema is not None:
            parsed = [parse_structured(t, self.schema) for t in texts.to_pylist()]
            for name in schema_fields(self.schema):
                table = table.append_column(name, pa.array([p[0].get(name) if p[0] else None for p in parsed]))
            table = table.append_column("_parse_error", pa.array([p[1] for p in parsed], pa.string()))
        return table

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        """Stream the input through the model, chunk by chunk."""
        import pyarrow as pa

        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        columns = self.template_columns()
        names = check_columns(ctx, source, self.required_columns(columns))
        if self.output_column in names:
            raise DreamError(f"rule {ctx.job.rule.name!r}: the input already has a column {self.output_column!r}",
                             ctx.job.rule.where, hint="pick another output_column=")
        start = 0
        for batch in iter_batches(source, self.chunk_rows):
            turns = self.user_turns(batch, columns)
            gens = self.generate(ctx, turns, self.seeds(start, batch.num_rows))
            start += batch.num_rows
            yield self.finish(pa.Table.from_batches([batch]), gens)

    def execute(self, ctx: JobContext) -> None:
        ctx.write_batches(next(iter(ctx.outputs)), self.chunks(ctx))
        return None


# -- helpers ---------------------------------------------------------------------------------
@functools.cache
def _step_options(cls: type) -> frozenset[str]:
    """The named options of a prompt step class and its bases (for 'did you mean')."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(p for p in inspect.signature(init).parameters if p not in ("self", "generation", "options"))
    return frozenset(names)


def _jinja() -> Any:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, **values: Any) -> str:
    """Render a Jinja template string once."""
    return _jinja().from_string(template).render(**values)


def json_schema(schema: Any) -> Any:
    """A JSON schema dict from a dict or a pydantic model class (None stays None)."""
    if schema is None or isinstance(schema, dict):
        return schema
    if hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    raise TypeError("schema= must be a JSON schema dict or a pydantic model class")


def schema_fields(schema: Any) -> list[str]:
    """Top-level property names of a schema: they become columns."""
    return list((json_schema(schema) or {}).get("properties", {}))


def schema_instruction(schema: Any) -> str:
    """Appended to each prompt when structured output is requested."""
    return ("\n\nAnswer with only a JSON object that matches this JSON schema:\n"
            + json.dumps(json_schema(schema), sort_keys=True))


def parse_structured(text: str, schema: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Parse a generation as the schema's JSON object: (values, None) or (None, error message)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None, "no JSON object in the generation"
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg}"
    if not isinstance(data, dict):
        return None, "the JSON is not an object"
    if hasattr(schema, "model_validate"):
        try:
            return schema.model_validate(data).model_dump(mode="json"), None
        except Exception as exc:  # pydantic.ValidationError, without importing pydantic here
            return None, str(exc).splitlines()[0]
    spec = json_schema(schema)
    missing = [k for k in spec.get("required", []) if k not in data]
    if missing:
        return None, f"missing field(s): {', '.join(missing)}"
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}
    for name, prop in spec.get("properties", {}).items():
        expected = types.get(prop.get("type", ""))
        if name in data and expected and not isinstance(data[name], expected):
            return None, f"field {name!r} is not a {prop['type']}"
    return {k: data.get(k) for k in spec.get("properties", {})}, None


# -- the rule kinds --------------------------------------------------------------------------
def prompt(llm: LLM, input_column: str | None = None, output_column: str = "output", template: str | None = None,
           **options: Any) -> PromptStep:
    """Send each row's `input_column` text (or its chat messages, or the rendered Jinja `template`) to `llm`.

    Options: system=, seed=, schema=, temperature=, top_p=, max_tokens=, stop=, chunk_rows=.
    Example: `rules.prompt(llm=tiny, input_column="question", output_column="answer", max_tokens=64)`.
    """
    return PromptStep(llm, input_column, output_column, template, **options)


class ProcessWithPrompt(PromptStep):
    """An instruction applied to each input row (see `process_with_prompt`)."""

    kind = "process_with_prompt"

    def __init__(self, llm: LLM, instruction: str, input_column: str, output_column: str = "output",
                 input_label: str = "", **options: Any):
        template = instruction.rstrip() + "\n\n" + input_label + "{{ " + input_column + " }}"
        super().__init__(llm, input_column, output_column, template, **options)
        self.instruction = instruction

    def template_columns(self) -> list[str] | None:
        super().template_columns()
        return [self.input_column] if self.input_column else []


def process_with_prompt(llm: LLM, instruction: str, input_column: str, output_column: str = "output",
                        **options: Any) -> ProcessWithPrompt:
    """Apply `instruction` to each row's `input_column`: the prompt is the instruction, a blank line, the input.

    Example: `rules.process_with_prompt(llm=tiny, instruction="Write a tweet about this abstract.",
    input_column="abstract", output_column="tweet", max_tokens=60)`.
    """
    return ProcessWithPrompt(llm, instruction, input_column, output_column, **options)


class DataFromPrompt(PromptStep):
    """n rows generated from one instruction (see `data_from_prompt`)."""

    kind = "data_from_prompt"

    def __init__(self, llm: LLM, instruction: str, n: int, output_column: str = "generations", **options: Any):
        if not isinstance(n, int) or n < 0:
            raise TypeError(f"n= must be a non-negative integer, got {n!r}")
        options.setdefault("temperature", 1.0)
        super().__init__(llm, None, output_column, None, **options)
        self.instruction = instruction
        self.n = n

    def params(self) -> dict[str, Any]:
        # n changes the rule's fingerprint, not the rows' cache keys: raising n only generates the new rows
        return {**super().params(), "instruction": self.instruction, "n": self.n}

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        import pyarrow as pa

        base = self.seed or 0
        for start in range(0, self.n, self.chunk_rows):
            count = min(self.chunk_rows, self.n - start)
            turns = [self.instruction + (schema_instruction(self.schema) if self.schema else "")] * count
            indexes = list(range(start, start + count))
            gens = self.generate(ctx, turns, [base + i for i in indexes], indexes)
            yield self.finish(pa.table({"_row": pa.array(indexes, pa.int64())}), gens)

    def finish(self, table: Any, gens: Any) -> Any:
        return super().finish(table, gens).drop_columns(["_row"])


def data_from_prompt(llm: LLM, instruction: str, n: int, output_column: str = "generations",
                     **options: Any) -> DataFromPrompt:
    """Generate `n` rows from one instruction; row i uses seed `seed + i` and sample index i, so raising n
    from 1,000 to 1,200 costs exactly 200 calls.

    Example: `rules.data_from_prompt(llm=tiny, n=1000, instruction="Write an NLP abstract.",
    output_column="abstract", temperature=1.2, seed=0)`.
    """
    return DataFromPrompt(llm, instruction, n, output_column, **options)


class DataFromAttributedPrompt(PromptStep):
    """AttrPrompt-style generation over attribute combinations (see `data_from_attributed_prompt`)."""

    kind = "data_from_attributed_prompt"

    def __init__(self, llm: LLM, template: str, attributes: dict[str, Sequence[Any]], n: int | None = None,
                 output_column: str = "generations", **options: Any):
        if not attributes:
            raise TypeError("attributes= must map attribute names to lists of values")
        options.setdefault("temperature", 1.0)
        super().__init__(llm, None, output_column, template, **options)
        self.attributes = {k: list(v) for k, v in attributes.items()}
        self.n = n

    def params(self) -> dict[str, Any]:
        return {**super().params(), "attributes": self.attributes, "n": self.n}

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of attribute values, or `n` of them sampled with the seed (with repeats if n is larger)."""
        import itertools

        names = list(self.attributes)
        combos = [dict(zip(names, values)) for values in itertools.product(*self.attributes.values())]
        if self.n is None:
            return combos
        rng = random.Random(self.seed)
        if self.n <= len(combos):
            return rng.sample(combos, self.n)
        return [rng.choice(combos) for _ in range(self.n)]

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        import pyarrow as pa

        self.template_columns()
        rows = self.combinations()
        base = self.seed or 0
        for start in range(0, len(rows), self.chunk_rows):
            chunk = rows[start : start + self.chunk_rows]
            turns = [self._compiled.render(**row) for row in chunk]
            if self.schema is not None:
                turns = [t + schema_instruction(self.schema) for t in turns]
            indexes = list(range(start, start + len(chunk)))
            gens = self.generate(ctx, turns, [base + i for i in indexes], indexes)
            yield self.finish(pa.Table.from_pylist(chunk), gens)


def data_from_attributed_prompt(llm: LLM, template: str, attributes: dict[str, Sequence[Any]],
                                n: int | None = None, output_column: str = "generations",
                                **options: Any) -> DataFromAttributedPrompt:
    """Fill a Jinja `template` with every combination of attribute values (or `n` sampled ones) and generate.

    Example: `rules.data_from_attributed_prompt(llm=tiny, template="Write a {{length}} {{style}} movie review.",
    attributes={"length": ["short", "long"], "style": ["happy", "angry"]}, output_column="review")`.
    The attribute values are columns of the output.
    """
    return DataFromAttributedPrompt(llm, template, attributes, n, output_column, **options)


class FewShotPrompt(PromptStep):
    """Instruction + k in-context examples from another target (see `few_shot_prompt`)."""

    kind = "few_shot_prompt"

    def __init__(self, llm: LLM, examples: str, input_column: str, output_column: str = "output",
                 k: int = 3, instruction: str | None = None, example_input_column: str | None = None,
                 example_output_column: str | None = None, input_label: str = "Input: ",
                 output_label: str = "Output: ", sample: bool = False, **options: Any):
        super().__init__(llm, input_column, output_column, None, **options)
        self.examples = examples
        self.k = k
        self.instruction = instruction
        self.example_input_column = example_input_column or input_column
        self.example_output_column = example_output_column or output_column
        self.input_label = input_label
        self.output_label = output_label
        self.sample = sample

    def params(self) -> dict[str, Any]:
        return {**super().params(), "k": self.k, "instruction": self.instruction, "sample": self.sample,
                "columns": [self.example_input_column, self.example_output_column],
                "labels": [self.input_label, self.output_label]}

    def extra_inputs(self) -> list[str]:
        return [self.examples, *super().extra_inputs()]

    def load_examples(self, ctx: JobContext) -> list[tuple[str, str]]:
        from dreammake.tables import read_table

        path = ctx.input_path(len(ctx.job.inputs) - len(self.extra_inputs()))
        check_columns(ctx, path, [self.example_input_column, self.example_output_column])
        table = read_table(path)
        return list(zip(table.column(self.example_input_column).to_pylist(),
                        table.column(self.example_output_column).to_pylist()))

    def format(self, shots: Sequence[tuple[str, str]], text: str) -> str:
        parts = [self.instruction.rstrip()] if self.instruction else []
        parts += [f"{self.input_label}{i}\n{self.output_label}{o}" for i, o in shots]
        parts.append(f"{self.input_label}{text}\n{self.output_label}".rstrip())
        return "\n\n".join(parts)

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        self._examples = self.load_examples(ctx)
        self._rng = random.Random(self.seed)
        yield from super().chunks(ctx)

    def user_turns(self, batch: Any, columns: list[str] | None) -> list[Any]:
        texts = batch.column(self.input_column).to_pylist()
        if self.sample:
            return [self.format(self._rng.sample(self._examples, min(self.k, len(self._examples))), str(t))
                    for t in texts]
        shots = self._examples[: self.k]
        return [self.format(shots, str(t)) for t in texts]


def few_shot_prompt(llm: LLM, examples: str, input_column: str, output_column: str = "output", k: int = 3,
                    **options: Any) -> FewShotPrompt:
    """Prompt with an instruction and `k` input→output examples taken from another target (`examples=` path).

    Example: `rules.few_shot_prompt(llm=tiny, examples="targets/seed_qa.parquet", input_column="question",
    output_column="answer", k=3, instruction="Answer the question.")`. Options: example_input_column=,
    example_output_column=, input_label=, output_label=, sample=True (k random examples per row, seeded).
    """
    return FewShotPrompt(llm, examples, input_column, output_column, k, **options)
