"""`run_task_model`: a task model (a classifier trained in the Dreamfile, a local folder, a Hub model, any
transformers pipeline task) over a column.

    clf = target("models/classifier/")
    rule("labelled", input="targets/texts.parquet", output="targets/labelled.parquet",
         run=rules.run_task_model(clf, input_column="text", output_column="label"))

A checkpoint built by the Dreamfile is an input of the rule (its content enters the fingerprint through that
edge); a folder or Hub model enters by its weights' content (and a Hub model by its pinned commit).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError

from .data import check_columns


class RunTaskModel(Action):
    """A transformers pipeline over a text column (see `run_task_model`)."""

    kind = "run_task_model"
    version = 1

    def __init__(self, model: str, input_column: str, output_column: str = "label",
                 task: str = "text-classification", scores_column: str | None = "score", batch_size: int = 32,
                 chunk_rows: int = 10_000, device: str | None = None, **pipeline_options: Any):
        if not isinstance(model, str) or not model:
            raise TypeError(f"run_task_model() needs a model folder, target(...) or Hub name, got {model!r}")
        self.model, self.input_column, self.output_column, self.task = model, input_column, output_column, task
        self.scores_column, self.batch_size, self.chunk_rows = scores_column, batch_size, chunk_rows
        self.device, self.pipeline_options = device, pipeline_options

    def _target(self) -> str | None:
        from dreammake.paths import normalize
        from dreammake.refs import TargetRef

        return normalize(self.model) if isinstance(self.model, TargetRef) else None

    def params(self) -> dict[str, Any]:
        return {"input_column": self.input_column, "output_column": self.output_column, "task": self.task,
                "scores_column": self.scores_column, "options": self.pipeline_options}

    def model_identity(self) -> Any:
        target = self._target()
        if target is not None:
            return {"task_model_target": target}
        from dreammake.llm.models import resolve, spec_display_name, weights_hash

        return {"task_model": spec_display_name(self.model), "weights": weights_hash(resolve(self.model))}

    def extra_inputs(self) -> list[str]:
        """A checkpoint trained by this Dreamfile is an input of the rule."""
        target = self._target()
        return [target] if target else []

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        source = ctx.input_path(0)
        check_columns(ctx, source, [self.input_column])
        run = self._pipeline(ctx)

        def chunks() -> Iterator[Any]:
            for batch in iter_batches(source, self.chunk_rows):
                texts = [str(t) for t in batch.column(self.input_column).to_pylist()]
                results = run(texts, batch_size=self.batch_size) if texts else []
                table = pa.Table.from_batches([batch])
                if self.scores_column and all(isinstance(r, dict) and "label" in r for r in results):
                    table = table.append_column(self.output_column, pa.array([r["label"] for r in results],
                                                                             pa.string()))
                    table = table.append_column(self.scores_column, pa.array([float(r["score"]) for r in results],
                                                                             pa.float32()))
                else:  # any other task: its whole result, as JSON
                    table = table.append_column(self.output_column, pa.array(
                        [json.dumps(r, default=float) for r in results], pa.string()))
                yield table

        ctx.write_batches(next(iter(ctx.outputs)), chunks())

    def _pipeline(self, ctx: JobContext) -> Any:
        from dreammake.llm.models import quiet_transformers, resolve

        folder = self._target() or str(resolve(self.model))
        quiet_transformers()
        from transformers import pipeline

        device = self.device or "cpu"
        try:
            return pipeline(self.task, model=folder, device=device, **self.pipeline_options)
        except (OSError, ValueError, KeyError) as exc:
            raise DreamError(f"rule {ctx.job.rule.name!r}: cannot make a {self.task!r} pipeline of {folder}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                             ctx.job.rule.where) from None


def run_task_model(model: str, input_column: str, output_column: str = "label", task: str = "text-classification",
                   scores_column: str | None = "score", batch_size: int = 32, chunk_rows: int = 10_000,
                   device: str | None = None, **pipeline_options: Any) -> RunTaskModel:
    """Run a task model over `input_column`: a checkpoint the Dreamfile trains (`target("models/clf/")`), a local
    folder or a Hub model (ORG/NAME), as a transformers `pipeline(task)`. Classification-like tasks write
    `output_column` (label) and `scores_column` (its score); other tasks write each result as JSON text.

    Example: `rules.run_task_model(target("models/clf/"), input_column="text", output_column="label")`.
    """
    return RunTaskModel(model, input_column, output_column, task, scores_column, batch_size, chunk_rows, device,
                        **pipeline_options)
