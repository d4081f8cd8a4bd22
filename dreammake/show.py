"""`dreammake show TARGET`: the rows of a Parquet target (or source file) in the terminal.

A rich table on a terminal, tab-separated text otherwise (long cells truncated in both), or
JSON lines (values complete). Only the row groups that hold the wanted rows are read.
"""

from __future__ import annotations

import bisect
import json
import os
import random
from typing import TYPE_CHECKING, Any, TextIO

from dreammake.errors import DreamError
from dreammake.graph import Resolver
from dreammake.paths import normalize
from dreammake.suggest import did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa

    from dreammake.dsl import Workflow

TEXT_CELL = 200  # characters of a cell in tab-separated text
TABLE_CELL = 120  # characters of a cell in the terminal table (it wraps within its column)


def table_path(workflow: Workflow, target: str) -> str:
    """The Parquet file of `target`: an output path or a rule name of the Dreamfile, or an existing source file."""
    resolver = Resolver(workflow)
    path = normalize(target)
    if resolver.producer_of(path) is None and target not in workflow.by_name and os.path.isfile(path):
        return path
    job = resolver.request(target)
    if not job.outputs:
        raise DreamError(f"{target} is an aggregate rule with no outputs",
                         hint="show one of its inputs: " + ", ".join(job.input_paths))
    if len(job.outputs) > 1:
        raise DreamError(f"rule {job.rule.name!r} makes {len(job.outputs)} outputs",
                         hint="show one of them: " + ", ".join(job.output_paths))
    path = job.output_paths[0]
    if job.rule.folders or os.path.isdir(path):
        raise DreamError(f"{path}/ is a folder target (a checkpoint?), not a table")
    if not os.path.exists(path):
        raise DreamError(f"{path} is not built yet", hint=f"run `dreammake {target}` first")
    return path


def read_rows(path: str, limit: int, columns: list[str] | None = None, sample: bool = False) -> tuple[pa.Table, int]:
    """Up to `limit` rows of a Parquet file (the first ones, or a random sample in file order), only `columns`
    (all by default); returns them with the file's row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DreamError(f"cannot read {path} as Parquet: {exc}") from None
    names = file.schema_arrow.names
    for column in columns or []:
        if column not in names:
            raise DreamError(f"{path} has no column {column!r}{did_you_mean(column, names)}",
                             hint="its columns: " + ", ".join(names))
    total = file.metadata.num_rows
    wanted = sorted(random.sample(range(total), min(limit, total))) if sample else range(min(limit, total))
    pieces, start = [], 0
    for group in range(file.num_row_groups):
        if not wanted or start > wanted[-1]:
            break
        end = start + file.metadata.row_group(group).num_rows
        inside = [i - start for i in wanted[bisect.bisect_left(wanted, start) : bisect.bisect_left(wanted, end)]]
        if inside:
            pieces.append(file.read_row_group(group, columns=columns).take(inside))
        start = end
    empty = file.schema_arrow.empty_table()
    table = pa.concat_tables(pieces) if pieces else empty.select(columns) if columns else empty
    return table, total


def cell(value: Any, width: int) -> str:
    """One value as text on one line, cut to `width` characters (nested values as JSON)."""
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\r", "").replace("\n", "⏎").replace("\t", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_rows(table: pa.Table, total: int, path: str, stream: TextIO, as_json: bool = False,
               rich: bool | None = None) -> None:
    """Write `table`'s rows: JSON lines, a rich table (default on a terminal) or tab-separated text."""
    rows = table.to_pylist()
    if as_json:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return
    if rich is None:
        rich = stream.isatty() and os.environ.get("TERM") != "dumb"
    if not rich:
        stream.write("\t".join(table.column_names) + "\n")
        for row in rows:
            stream.write("\t".join(cell(v, TEXT_CELL) for v in row.values()) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    view = Table(caption=f"{len(rows):,} of {total:,} rows of {path}", show_lines=True, highlight=False)
    for name in table.column_names:
        view.add_column(Text(name), overflow="fold")
    for row in rows:  # Text, not markup: a cell may hold "[brackets]"
        view.add_row(*(Text(cell(v, TABLE_CELL)) for v in row.values()))
    Console(file=stream, highlight=False).print(view)
