"""`rules.number_rows(column="n", start=0)`: the input table with a running row number appended."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dreammake.actions import Action, JobContext


class NumberRows(Action):
    """Appends `column`: start, start + 1, ... over the input's rows, streamed batch by batch."""

    kind = "number_rows"
    version = 1

    def __init__(self, column: str, start: int):
        self.column = column
        self.start = start

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "start": self.start}

    def batches(self, ctx: JobContext) -> Iterator[Any]:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        offset = self.start
        for batch in iter_batches(ctx.input_path(0)):
            table = pa.Table.from_batches([batch])
            yield table.append_column(self.column, pa.array(range(offset, offset + len(table)), pa.int64()))
            offset += len(table)

    def execute(self, ctx: JobContext) -> None:
        ctx.write_batches(next(iter(ctx.outputs)), self.batches(ctx))


def number_rows(column: str = "n", start: int = 0) -> NumberRows:
    """Number the input's rows into `column`, counting from `start`."""
    return NumberRows(column, start)
