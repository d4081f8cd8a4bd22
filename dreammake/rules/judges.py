"""LLM judgements over rows: filter, rank, and pairwise comparisons.

    rule("good", input="targets/tweets.parquet", output="targets/good.parquet",
         run=rules.filter_with_prompt(llm=tiny, input_column="tweet",
                                      instruction="Is this tweet polite? Answer yes or no."))
    rule("ranked", input="targets/tweets.parquet", output="targets/ranked.parquet",
         run=rules.rank_with_prompt(llm=tiny, input_column="tweet", threshold=5,
                                    instruction="Rate this tweet from 1 to 10. Answer with a number."))
    rule("prefs", input="targets/pairs.parquet", output="targets/prefs.parquet",
         run=rules.judge_generation_pairs(llm=tiny, prompt_column="prompt", a_column="a", b_column="b"))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from dreammake.actions import JobContext
from dreammake.fingerprint import code_hash
from dreammake.llm.handle import LLM

from .data import check_columns
from .prompts import PromptStep

_YES = re.compile(r"^\W*(yes|true|y)\b", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_yes(text: str) -> bool:
    """True when a generation starts with yes/true."""
    return bool(_YES.match(text or ""))


def parse_score(text: str) -> float | None:
    """The first number in a generation, or None."""
    match = _NUMBER.search(text or "")
    return float(match.group()) if match else None


class FilterWithPrompt(PromptStep):
    """Keep rows whose generation passes `keep` (default: a yes/no answer)."""

    kind = "filter_with_prompt"

    def __init__(self, llm: LLM, instruction: str, input_column: str, keep: Callable[[str], bool] | None = None,
                 output_column: str | None = None, **options: Any):
        template = instruction.rstrip() + "\n\n{{ " + input_column + " }}"
        super().__init__(llm, input_column, output_column or "_judgement", template, **options)
        self.keep = keep or parse_yes
        self.keep_output = output_column is not None

    def code_identity(self) -> str:
        return code_hash(self.keep)

    def template_columns(self) -> list[str] | None:
        super().template_columns()
        return [self.input_column] if self.input_column else []

    def finish(self, table: Any, gens: Any) -> Any:
        import pyarrow as pa

        texts = gens.column("text").to_pylist()
        mask = pa.array([bool(self.keep(t)) for t in texts])
        out = super().finish(table, gens).filter(mask)
        return out if self.keep_output else out.drop_columns([self.output_column])


def filter_with_prompt(llm: LLM, instruction: str, input_column: str, keep: Callable[[str], bool] | None = None,
                       **options: Any) -> FilterWithPrompt:
    """Ask `instruction` about each row's `input_column` and keep the rows the answer passes.

    `keep` is a function of the generation (default: it starts with "yes"). Add `output_column=` to keep
    the model's answer as a column. Example: `rules.filter_with_prompt(llm=tiny, input_column="text",
    instruction="Is this text about science? Answer yes or no.", max_tokens=3)`.
    """
    return FilterWithPrompt(llm, instruction, input_column, keep, **options)


class RankWithPrompt(PromptStep):
    """Score rows with a prompt, sort by the score, optionally drop rows below a threshold."""

    kind = "rank_with_prompt"

    def __init__(self, llm: LLM, instruction: str, input_column: str, score_column: str = "score",
                 threshold: float | None = None, descending: bool = True,
                 parse: Callable[[str], float | None] | None = None, **options: Any):
        template = instruction.rstrip() + "\n\n{{ " + input_column + " }}"
        super().__init__(llm, input_column, "_judgement", template, **options)
        self.score_column = score_column
        self.threshold = threshold
        self.descending = descending
        self.parse = parse or parse_score

    def params(self) -> dict[str, Any]:
        return {**super().params(), "score_column": self.score_column, "threshold": self.threshold,
                "descending": self.descending}

    def code_identity(self) -> str:
        return code_hash(self.parse)

    def template_columns(self) -> list[str] | None:
        super().template_columns()
        return [self.input_column] if self.input_column else []

    def finish(self, table: Any, gens: Any) -> Any:
        import pyarrow as pa

        scores = [self.parse(t) for t in gens.column("text").to_pylist()]
        return table.append_column(self.score_column, pa.array(scores, pa.float64()))

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        # ranking needs every score: score in chunks, then sort once (scores are small)
        table = pa.concat_tables(list(self.chunks(ctx)))
        rows = table.to_pylist()
        if self.threshold is not None:
            rows = [r for r in rows if r[self.score_column] is not None and r[self.score_column] >= self.threshold]
        missing = -float("inf") if self.descending else float("inf")
        rows.sort(key=lambda r: missing if r[self.score_column] is None else r[self.score_column],
                  reverse=self.descending)
        ctx.write_batches(next(iter(ctx.outputs)), [pa.Table.from_pylist(rows, schema=table.schema)])


def rank_with_prompt(llm: LLM, instruction: str, input_column: str, score_column: str = "score",
                     threshold: float | None = None, **options: Any) -> RankWithPrompt:
    """Score each row with a prompt (the first number in the answer, or `parse=`), sort best first,
    and keep rows scoring at least `threshold` when given.

    Example: `rules.rank_with_prompt(llm=tiny, input_column="tweet", threshold=6,
    instruction="Rate the tweet's quality from 1 to 10. Answer with a number.", max_tokens=4)`.
    """
    return RankWithPrompt(llm, instruction, input_column, score_column, threshold, **options)


JUDGE_INSTRUCTION = ("Which response is better? Answer with exactly \"Response A\" or \"Response B\".")


class JudgePairs(PromptStep):
    """Pairwise judgement of two texts per row → "Response A" / "Response B" (or "Tie" when a swap disagrees)."""

    kind = "judge_pairs"

    def __init__(self, llm: LLM, a_column: str, b_column: str, prompt_column: str | None = None,
                 label_column: str = "judgement", instruction: str = JUDGE_INSTRUCTION, swap: bool = True,
                 **options: Any):
        super().__init__(llm, None, label_column, None, **options)
        self.a_column, self.b_column, self.prompt_column = a_column, b_column, prompt_column
        self.instruction = instruction
        self.swap = swap

    def params(self) -> dict[str, Any]:
        return {**super().params(), "columns": [self.prompt_column, self.a_column, self.b_column],
                "instruction": self.instruction, "swap": self.swap}

    def required_columns(self, columns: list[str] | None) -> list[str]:
        return [c for c in (self.prompt_column, self.a_column, self.b_column) if c]

    def format(self, prompt: str | None, a: str, b: str) -> str:
        head = f"{self.instruction}\n\n"
        if prompt is not None:
            head += f"Prompt: {prompt}\n\n"
        return f"{head}Response A: {a}\n\nResponse B: {b}\n\nAnswer:"

    def chunks(self, ctx: JobContext) -> Iterator[Any]:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        check_columns(ctx, source, self.required_columns(None))
        for batch in iter_batches(source, self.chunk_rows):
            a = batch.column(self.a_column).to_pylist()
            b = batch.column(self.b_column).to_pylist()
            prompts = batch.column(self.prompt_column).to_pylist() if self.prompt_column else [None] * len(a)
            turns = [self.format(p, x, y) for p, x, y in zip(prompts, a, b)]
            labels = [_label(t) for t in self.generate(ctx, turns, [self.seed] * len(turns)).column("text").to_pylist()]
            if self.swap:
                swapped = [self.format(p, y, x) for p, x, y in zip(prompts, a, b)]
                second = self.generate(ctx, swapped, [self.seed] * len(swapped)).column("text").to_pylist()
                flipped = [{"Response A": "Response B", "Response B": "Response A"}.get(_label(t)) for t in second]
                labels = [x if x == y else "Tie" for x, y in zip(labels, flipped)]
            yield pa.Table.from_batches([batch]).append_column(self.output_column, pa.array(labels, pa.string()))


class JudgeGenerationPairs(JudgePairs):
    """Pairwise judgement of two generations for the same prompt."""

    kind = "judge_generation_pairs"


def _label(text: str) -> str | None:
    match = re.search(r"response\s*([ab])\b", text or "", re.IGNORECASE)
    if match:
        return f"Response {match.group(1).upper()}"
    bare = re.match(r"^\W*([ab])\b", text or "", re.IGNORECASE)
    return f"Response {bare.group(1).upper()}" if bare else None


def judge_pairs(llm: LLM, a_column: str, b_column: str, label_column: str = "judgement", swap: bool = True,
                **options: Any) -> JudgePairs:
    """Judge two texts per row; the label column says "Response A" or "Response B". With `swap=True` (default)
    each pair is also judged in the other order, and a disagreement becomes "Tie" (position-bias check).

    Example: `rules.judge_pairs(llm=tiny, a_column="summary_1", b_column="summary_2",
    instruction="Which summary is more faithful? Answer \\"Response A\\" or \\"Response B\\".")`.
    """
    return JudgePairs(llm, a_column, b_column, None, label_column, swap=swap, **options)


def judge_generation_pairs(llm: LLM, prompt_column: str, a_column: str, b_column: str,
                           label_column: str = "judgement", swap: bool = True, **options: Any) -> JudgePairs:
    """Like `judge_pairs`, for two generations answering the row's `prompt_column`
    (e.g. to build DPO preference data: chosen = the winner).

    Example: `rules.judge_generation_pairs(llm=judge, prompt_column="prompt", a_column="a", b_column="b")`.
    """
    return JudgeGenerationPairs(llm, a_column, b_column, prompt_column, label_column, swap=swap, **options)
