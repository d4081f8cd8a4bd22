"""Data operations as rules: map, filter, column selection and renaming, take/skip, shuffle, sort, dedupe,
splits, shard, concat and zip.

    rule("clean", input="targets/raw.parquet", output="targets/clean.parquet",
         run=rules.filter(lambda row: len(row["text"]) > 20))
    rule("split", input="targets/clean.parquet",
         output={"train": "targets/train.parquet", "test": "targets/test.parquet"},
         run=rules.splits(train=0.9, test=0.1, seed=0))

Inputs are Parquet files read in memory-mapped record batches. Row-wise kinds (map, filter, select_columns,
rename_columns, take, skip, shard, concat, zip) stream in constant memory. Kinds that need the whole input
(shuffle, sort, splits) compute an order of row indices with vectorised NumPy/Arrow ops and gather rows in
chunks; dedupe finds first occurrences with DuckDB, then streams.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dreammake.actions import Action, JobContext
from dreammake.errors import DreamError
from dreammake.fingerprint import code_hash
from dreammake.targets import is_table_path, target_for

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from dreammake.dsl import Rule

ROW_CHUNK = 10_000  # rows per batch handed to row-wise Python functions
GATHER_ROWS = 65_536  # rows per output chunk when gathering by index
HOLD_ROWS = 1_000_000  # rows a map may hold back while a column's type is still unknown (all nulls)
_zip = builtins.zip  # this module defines its own `zip`, `map` and `filter` (rule kinds)


def _listing(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


# -- shared helpers (also used by rules.sources) ---------------------------------------------------
def fail(ctx: JobContext, message: str, hint: str | None = None) -> DreamError:
    """A DreamError naming the rule and pointing at its Dreamfile line."""
    return DreamError(f"rule {ctx.job.rule.name!r}: {message}", ctx.job.rule.where, hint=hint)


def single_output(ctx: JobContext) -> str:
    """The key of the rule's only output."""
    return next(iter(ctx.outputs))


def write(ctx: JobContext, batches: Iterable[Any], key: str | None = None, schema: pa.Schema | None = None) -> int:
    """`JobContext.write_batches` into output `key` (default: the only one); returns the row count."""
    return ctx.write_batches(single_output(ctx) if key is None else key, batches, schema)


def parquet_inputs(ctx: JobContext) -> list[str]:
    """The rule's input paths, checked to be Parquet files."""
    paths = [p for _, p in ctx.job.inputs]
    for path in paths:
        if not target_for(path).is_table:
            raise fail(ctx, f"input {path} is not a Parquet file", hint="read it into Parquet first with rules.read()")
    return paths


def schema_of(path: str) -> pa.Schema:
    """A Parquet file's Arrow schema, without metadata."""
    import pyarrow.parquet as pq

    return pq.read_schema(path, memory_map=True).remove_metadata()


def num_rows(path: str) -> int:
    """Rows in a Parquet file (from its footer)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, memory_map=True).metadata.num_rows


def check_columns(ctx: JobContext, path: str, names: Iterable[str], option: str | None = None) -> list[str]:
    """Fail with one line naming the option (when given), the first missing column and the closest one the
    Parquet file at `path` has; returns the file's column names."""
    from dreammake.suggest import did_you_mean

    have = schema_of(path).names
    missing = [n for n in names if n not in have]
    if missing:
        where = f"{option}: " if option else ""
        raise fail(ctx, f"{where}{path} has no column {_listing(missing)}{did_you_mean(missing[0], have)} (it has "
                        f"{', '.join(have) or 'no columns'})")
    return have


def row_range(path: str, start: int, stop: int, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream rows [start, stop) of a Parquet file, skipping row groups outside the range."""
    import pyarrow.parquet as pq

    if stop <= start:
        return
    pf = pq.ParquetFile(path, memory_map=True)
    groups, first, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        return
    pos = first
    for batch in pf.iter_batches(batch_size=rows, row_groups=groups):
        end = pos + batch.num_rows
        lo, hi = max(start, pos), min(stop, end)
        if hi > lo:
            yield batch if (lo, hi) == (pos, end) else batch.slice(lo - pos, hi - lo)
        pos = end
        if pos >= stop:
            return


def gather(table: pa.Table, indices: np.ndarray, rows: int = GATHER_ROWS) -> Iterator[pa.Table]:
    """The rows of `table` at `indices`, in that order, as chunks of at most `rows` rows."""
    for i in range(0, len(indices), rows):
        yield table.take(indices[i : i + rows])


def permutation(n: int, seed: int) -> np.ndarray:
    """A random order of range(n) that depends only on (n, seed), not on library versions.

    Each row index is keyed by the SplitMix64 finaliser of (index + a seed-derived offset): a bijection,
    so keys never tie; sorting by key gives the permutation."""
    import numpy as np
    import xxhash

    offset = np.uint64(xxhash.xxh64_intdigest(f"dreammake-shuffle:{seed}".encode()))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + offset + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.argsort(z, kind="stable")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _user_call(ctx: JobContext, what: str, fn: Callable[..., Any], arg: Any, where: str) -> Any:
    try:
        return fn(arg)
    except DreamError:
        raise
    except Exception as exc:
        raise fail(ctx, f"{what} function failed on {where}: {type(exc).__name__}: {exc}") from exc


# -- base class ------------------------------------------------------------------------------------
class DataStep(Action):
    """Base of the data kinds: checks the rule's input and output counts when bound."""

    version = 1
    inputs = "one"  # "one" | "many" (one or more)
    outputs = "one"  # "one" | "named" (checked by the kind)

    def bind(self, rule: Rule) -> None:
        n = len(rule.inputs)
        if self.inputs == "one" and n != 1:
            raise DreamError(f"rule {rule.name!r}: rules.{self.kind}() reads exactly one input; the rule has {n}",
                             rule.where)
        if self.inputs == "many" and n < 1:
            raise DreamError(f"rule {rule.name!r}: rules.{self.kind}() needs input= files", rule.where)
        if self.outputs == "one" and len(rule.outputs) != 1:
            raise DreamError(f"rule {rule.name!r}: rules.{self.kind}() writes one output; the rule has "
                             f"{len(rule.outputs)}", rule.where)
        for _, path in rule.outputs:
            if not is_table_path(path) or rule.folders:
                raise DreamError(f"rule {rule.name!r}: rules.{self.kind}() writes Parquet; {path} does not end "
                                 "in .parquet", rule.where)


# -- map / filter ----------------------------------------------------------------------------------
class Map(DataStep):
    """Apply a Python function to every row (or every batch) of the input; see `map`."""

    kind = "map"

    def __init__(self, fn: Callable[[Any], Any], batched: bool = False, batch_size: int = 1000):
        if not callable(fn):
            raise TypeError(f"map() needs a function, got {type(fn).__name__}")
        if not _is_count(batch_size) or batch_size < 1:
            raise ValueError(f"map(): batch_size= must be a positive integer, got {batch_size!r}")
        self.fn = fn
        self.batched = bool(batched)
        self.batch_size = batch_size

    def params(self) -> dict[str, Any]:
        return {"batched": self.batched, "batch_size": self.batch_size if self.batched else None}

    def code_identity(self) -> str:
        return code_hash(self.fn)

    def execute(self, ctx: JobContext) -> None:
        from dreammake.tables import iter_batches

        (path,) = parquet_inputs(ctx)
        advance = ctx.track("map", num_rows(path))

        def tables() -> Iterator[pa.Table]:
            start = 0
            for batch in iter_batches(path, self.batch_size if self.batched else ROW_CHUNK):
                table = self._apply(ctx, batch, start)
                start += batch.num_rows
                advance(batch.num_rows)
                if table is not None:
                    yield table

        write(ctx, uniform(ctx, tables(), "the map function"))

    def _apply(self, ctx: JobContext, batch: pa.RecordBatch, start: int) -> pa.Table | None:
        import pyarrow as pa

        from dreammake.tables import to_table

        if self.batched:
            where = f"rows {start}-{start + batch.num_rows - 1}"
            result = _user_call(ctx, "map", self.fn, batch.to_pydict(), where)
            try:
                return to_table(result, f"rule {ctx.job.rule.name!r}")
            except (TypeError, ValueError, pa.ArrowException) as exc:
                raise fail(ctx, f"the map function's result for {where} is not a table: {exc}",
                           hint="a batched map returns a dict of equal-length lists") from None
        out = []
        keys = None
        for i, row in enumerate(batch.to_pylist()):
            new = _user_call(ctx, "map", self.fn, row, f"row {start + i}")
            if not isinstance(new, dict):
                raise fail(ctx, f"the map function returned a {type(new).__name__} for row {start + i}; it must "
                                "return a dict (the new row)", hint="e.g. lambda row: {**row, 'n': len(row['text'])}")
            if keys is None:
                keys = new.keys()
            elif new.keys() != keys:
                raise fail(ctx, f"the map function returned keys {sorted(new)} for row {start + i} but "
                                f"{sorted(keys)} before", hint="return the same keys for every row")
            out.append(new)
        if not out:
            return None
        try:
            return pa.table({k: [r[k] for r in out] for k in keys})
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise fail(ctx, f"the map function's rows {start}-{start + len(out) - 1} do not form a table: {exc}",
                       hint="give each key values of one type") from None


def uniform(ctx: JobContext, tables: Iterable[pa.Table], what: str) -> Iterator[pa.Table]:
    """Yield tables cast to one schema. While a column is all-null so far (type unknown) tables are held
    back, up to HOLD_ROWS rows, so a later batch can still decide its type."""
    import pyarrow as pa

    schema: pa.Schema | None = None
    held: list[pa.Table] = []
    held_rows = 0
    for table in tables:
        if schema is not None and not held:
            yield _cast(ctx, table, schema, what)
            continue
        held.append(table)
        held_rows += table.num_rows
        first = held[0].schema
        if set(table.column_names) != set(first.names):
            raise fail(ctx, f"{what} returned columns {table.column_names} for some rows but {first.names} "
                            "for earlier ones", hint="return the same keys for every row")
        try:
            schema = pa.unify_schemas([t.schema for t in held], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise fail(ctx, f"{what} returned values of different types in one column: {exc}") from None
        if held_rows < HOLD_ROWS and any(pa.types.is_null(f.type) for f in schema):
            continue
        for t in held:
            yield _cast(ctx, t, schema, what)
        held, held_rows = [], 0
    for t in held:
        yield _cast(ctx, t, schema, what)


def _cast(ctx: JobContext, table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    import pyarrow as pa

    if table.schema.equals(schema):
        return table
    if set(table.column_names) != set(schema.names):
        raise fail(ctx, f"{what} returned columns {table.column_names} for some rows but {schema.names} for "
                        "earlier ones", hint="return the same keys for every row")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        have = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
        want = ", ".join(f"{f.name}: {f.type}" for f in schema)
        raise fail(ctx, f"{what} returned ({have}) for some rows but ({want}) for earlier ones: {exc}",
                   hint="give each key values of one type") from None


class Filter(DataStep):
    """Keep the rows a Python predicate accepts; see `filter`."""

    kind = "filter"

    def __init__(self, fn: Callable[[Any], Any], batched: bool = False, batch_size: int = 1000):
        if not callable(fn):
            raise TypeError(f"filter() needs a function, got {type(fn).__name__}")
        if not _is_count(batch_size) or batch_size < 1:
            raise ValueError(f"filter(): batch_size= must be a positive integer, got {batch_size!r}")
        self.fn = fn
        self.batched = bool(batched)
        self.batch_size = batch_size

    def params(self) -> dict[str, Any]:
        return {"batched": self.batched}

    def code_identity(self) -> str:
        return code_hash(self.fn)

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        (path,) = parquet_inputs(ctx)
        advance = ctx.track("filter", num_rows(path))

        def kept() -> Iterator[pa.RecordBatch]:
            start = 0
            for batch in iter_batches(path, self.batch_size if self.batched else ROW_CHUNK):
                yield batch.filter(pa.array(self._mask(ctx, batch, start), pa.bool_()))
                start += batch.num_rows
                advance(batch.num_rows)

        write(ctx, kept(), schema=schema_of(path))

    def _mask(self, ctx: JobContext, batch: pa.RecordBatch, start: int) -> list[bool]:
        if self.batched:
            where = f"rows {start}-{start + batch.num_rows - 1}"
            result = _user_call(ctx, "filter", self.fn, batch.to_pydict(), where)
            try:
                mask = [bool(v) for v in result]
            except TypeError:
                mask = None
            if mask is None or len(mask) != batch.num_rows:
                raise fail(ctx, f"the batched filter function must return one bool per row ({batch.num_rows} for "
                                f"{where}), got {type(result).__name__}")
            return mask
        return [bool(_user_call(ctx, "filter", self.fn, row, f"row {start + i}"))
                for i, row in enumerate(batch.to_pylist())]


# -- columns ---------------------------------------------------------------------------------------
class SelectColumns(DataStep):
    """Keep some columns, in the given order; see `select_columns`."""

    kind = "select_columns"

    def __init__(self, names: Sequence[str]):
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"select_columns() needs column names (strings), got {list(names)!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"select_columns(): a column is named twice in {list(names)!r}")
        self.names = list(names)

    def params(self) -> dict[str, Any]:
        return {"columns": self.names}

    def execute(self, ctx: JobContext) -> None:
        from dreammake.tables import iter_batches

        (path,) = parquet_inputs(ctx)
        check_columns(ctx, path, self.names, "select_columns")
        write(ctx, (b.select(self.names) for b in iter_batches(path)),
              schema=_select_schema(schema_of(path), self.names))


def _select_schema(schema: pa.Schema, names: list[str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([schema.field(n) for n in names])


class RenameColumns(DataStep):
    """Rename columns; see `rename_columns`."""

    kind = "rename_columns"

    def __init__(self, mapping: dict[str, str]):
        if not isinstance(mapping, dict) or not mapping:
            raise TypeError("rename_columns() needs a dict {old name: new name}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise TypeError(f"rename_columns(): names must be strings, got {mapping!r}")
        self.mapping = dict(mapping)

    def params(self) -> dict[str, Any]:
        return {"mapping": self.mapping}

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        from dreammake.tables import iter_batches

        (path,) = parquet_inputs(ctx)
        check_columns(ctx, path, self.mapping, "rename_columns")
        schema = schema_of(path)
        names = [self.mapping.get(n, n) for n in schema.names]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise fail(ctx, f"rename_columns: the new names clash: {_listing(clash)} would name two "
                            f"columns (columns: {', '.join(schema.names)})")
        renamed = pa.schema([f.with_name(n) for f, n in _zip(schema, names)])
        write(ctx, (b.rename_columns(names) for b in iter_batches(path)), schema=renamed)


# -- row ranges ------------------------------------------------------------------------------------
class Take(DataStep):
    """The first n rows; see `take`."""

    kind = "take"

    def __init__(self, n: int):
        if not _is_count(n) or n < 0:
            raise ValueError(f"take(): n must be a non-negative integer, got {n!r}")
        self.n = n

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def execute(self, ctx: JobContext) -> None:
        (path,) = parquet_inputs(ctx)
        write(ctx, row_range(path, 0, self.n), schema=schema_of(path))


class Skip(DataStep):
    """All rows but the first n; see `skip`."""

    kind = "skip"

    def __init__(self, n: int):
        if not _is_count(n) or n < 0:
            raise ValueError(f"skip(): n must be a non-negative integer, got {n!r}")
        self.n = n

    def params(self) -> dict[str, Any]:
        return {"n": self.n}

    def execute(self, ctx: JobContext) -> None:
        (path,) = parquet_inputs(ctx)
        write(ctx, row_range(path, self.n, num_rows(path)), schema=schema_of(path))


class Shard(DataStep):
    """One of n shards of the input; see `shard`."""

    kind = "shard"

    def __init__(self, n: int, i: int, contiguous: bool = True):
        if not _is_count(n) or n < 1:
            raise ValueError(f"shard(): n (the number of shards) must be a positive integer, got {n!r}")
        if not _is_count(i) or not 0 <= i < n:
            raise ValueError(f"shard(): i (the shard index) must be an integer in 0..{n - 1}, got {i!r}")
        self.n, self.i, self.contiguous = n, i, bool(contiguous)

    def params(self) -> dict[str, Any]:
        return {"n": self.n, "i": self.i, "contiguous": self.contiguous}

    def execute(self, ctx: JobContext) -> None:
        (path,) = parquet_inputs(ctx)
        total = num_rows(path)
        if self.contiguous:
            size, extra = divmod(total, self.n)
            start = self.i * size + min(self.i, extra)
            stop = start + size + (1 if self.i < extra else 0)
            write(ctx, row_range(path, start, stop), schema=schema_of(path))
        else:
            write(ctx, self._strided(path), schema=schema_of(path))

    def _strided(self, path: str) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from dreammake.tables import iter_batches

        pos = 0
        for batch in iter_batches(path):
            first = (self.i - pos) % self.n
            yield batch.take(np.arange(first, batch.num_rows, self.n, dtype=np.int64))
            pos += batch.num_rows


# -- global order ----------------------------------------------------------------------------------
class Shuffle(DataStep):
    """All rows in a seeded random order; see `shuffle`."""

    kind = "shuffle"

    def __init__(self, seed: int = 0):
        if not _is_count(seed):
            raise ValueError(f"shuffle(): seed= must be an integer, got {seed!r}")
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def execute(self, ctx: JobContext) -> None:
        from dreammake.tables import read_table

        (path,) = parquet_inputs(ctx)
        table = read_table(path)
        write(ctx, gather(table, permutation(table.num_rows, self.seed)), schema=schema_of(path))


class Sort(DataStep):
    """Rows ordered by one or more columns (stable); see `sort`."""

    kind = "sort"

    def __init__(self, by: str | Sequence[str], descending: bool | Sequence[bool] = False):
        columns = [by] if isinstance(by, str) else list(by)
        if not columns or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"sort(): by= must be a column name or a list of them, got {by!r}")
        if isinstance(descending, bool):
            flags = [descending] * len(columns)
        else:
            flags = list(descending)
            if len(flags) != len(columns) or not all(isinstance(d, bool) for d in flags):
                raise ValueError(f"sort(): descending= must be a bool or one bool per column of by= {columns}, got"
                                 f" {descending!r}")
        self.by, self.descending = columns, flags

    def params(self) -> dict[str, Any]:
        return {"by": self.by, "descending": self.descending}

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from dreammake.tables import read_table

        (path,) = parquet_inputs(ctx)
        check_columns(ctx, path, self.by, "sort by=")
        keys = pq.read_table(path, columns=list(dict.fromkeys(self.by)), memory_map=True)
        order = [(c, "descending" if d else "ascending") for c, d in _zip(self.by, self.descending)]
        try:
            indices = pc.sort_indices(keys, sort_keys=order).to_numpy()
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            types = ", ".join(f"{c!r} is {keys.schema.field(c).type}" for c in dict.fromkeys(self.by))
            raise fail(ctx, f"sort: cannot order by= {self.by} ({types}): {exc}") from None
        del keys
        write(ctx, gather(read_table(path), indices), schema=schema_of(path))


class Dedupe(DataStep):
    """Drop rows whose key columns repeat an earlier row; see `dedupe`."""

    kind = "dedupe"

    def __init__(self, columns: str | Sequence[str] | None = None):
        if isinstance(columns, str):
            columns = [columns]
        if columns is not None and (not columns or not all(isinstance(c, str) for c in columns)):
            raise TypeError(f"dedupe(): columns= must be column names (or None for all), got {columns!r}")
        self.columns = None if columns is None else list(dict.fromkeys(columns))

    def params(self) -> dict[str, Any]:
        return {"columns": self.columns}

    def execute(self, ctx: JobContext) -> None:
        import duckdb
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from dreammake.tables import iter_batches

        (path,) = parquet_inputs(ctx)
        names = schema_of(path).names
        columns = self.columns if self.columns is not None else names
        check_columns(ctx, path, columns, "dedupe columns=")
        keys = pq.read_table(path, columns=columns, memory_map=True)
        n = keys.num_rows
        row = "__dreammake_row__"
        while row in names:
            row += "_"
        keys = keys.append_column(row, pa.array(np.arange(n, dtype=np.int64)))
        group = ", ".join(_quote(c) for c in columns)
        con = duckdb.connect()
        try:
            con.register("input_rows", keys)
            firsts = con.execute(f"SELECT min({_quote(row)}) AS i FROM input_rows GROUP BY {group}").fetchnumpy()["i"]
        except duckdb.Error as exc:
            raise fail(ctx, f"dedupe: cannot compare rows by columns {columns}: {exc}".splitlines()[0]) from None
        finally:
            con.close()
        del keys
        keep = np.zeros(n, dtype=bool)
        keep[np.asarray(firsts, dtype=np.int64)] = True

        def kept() -> Iterator[pa.RecordBatch]:
            pos = 0
            for batch in iter_batches(path):
                yield batch.filter(pa.array(keep[pos : pos + batch.num_rows]))
                pos += batch.num_rows

        write(ctx, kept(), schema=schema_of(path))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Splits(DataStep):
    """Named splits (train/validation/test...) of the input, one output each; see `splits`."""

    kind = "splits"
    outputs = "named"

    def __init__(self, sizes: dict[str, float | int | None], seed: int = 0, shuffle: bool = True):
        if not sizes:
            raise ValueError("splits() needs split sizes, e.g. splits(train=0.9, test=0.1)")
        for name, size in sizes.items():
            if size is not None and not _is_count(size) and not isinstance(size, float):
                raise TypeError(f"splits(): {name}= must be a fraction (float), a row count (int) or None (the rest),"
                                f" got {size!r}")
            if _is_count(size) and size < 0 or isinstance(size, float) and not 0.0 <= size <= 1.0:
                raise ValueError(f"splits(): {name}={size!r} is out of range (fractions are 0.0-1.0, counts >= 0)")
        given = [s for s in sizes.values() if s is not None]
        if any(isinstance(s, float) for s in given) and any(_is_count(s) for s in given):
            raise ValueError(f"splits(): give all sizes as fractions (0.9) or all as row counts (900), got {sizes}")
        if sum(s is None for s in sizes.values()) > 1:
            raise ValueError("splits(): at most one split may be None (the rows left over)")
        if given and isinstance(given[0], float) and math.fsum(given) > 1.0 + 1e-9:
            raise ValueError(f"splits(): the fractions add up to {math.fsum(given):g}, more than 1")
        if not _is_count(seed):
            raise ValueError(f"splits(): seed= must be an integer, got {seed!r}")
        self.sizes = dict(sizes)
        self.seed = seed
        self.shuffle = bool(shuffle)

    def bind(self, rule: Rule) -> None:
        super().bind(rule)
        names = [n for n, _ in rule.outputs]
        if rule.output_shape != "dict" or set(names) != set(self.sizes):
            have = _listing(names) if rule.output_shape == "dict" else "unnamed outputs"
            raise DreamError(f"rule {rule.name!r}: rules.splits() makes splits {_listing(self.sizes)}, but"
                             f" the rule's output= has {have}", rule.where,
                             hint="give output= a dict with one path per split, keyed by the split names")

    def params(self) -> dict[str, Any]:
        # a list keeps the order, which decides which rows go to which split
        return {"sizes": [[name, size] for name, size in self.sizes.items()], "seed": self.seed,
                "shuffle": self.shuffle}

    def ranges(self, ctx: JobContext, n: int) -> dict[str, tuple[int, int]]:
        """[start, stop) of each split in the (shuffled) row order."""
        given = [s for s in self.sizes.values() if s is not None]
        counts: dict[str, int] = {}
        if given and isinstance(given[0], float):
            rest = max(0.0, 1.0 - math.fsum(given))
            cumulative, done = 0.0, 0
            for name, size in self.sizes.items():
                cumulative += rest if size is None else size
                bound = n if cumulative >= 1.0 - 1e-9 else min(n, int(math.floor(cumulative * n + 0.5)))
                counts[name] = bound - done
                done = bound
        else:
            asked = sum(given)
            if asked > n:
                wanted = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
                raise fail(ctx, f"splits: {wanted} asks for {asked} rows, but the input has {n}",
                           hint="lower the counts, or give fractions")
            counts = {name: (n - asked if size is None else size) for name, size in self.sizes.items()}
        out, start = {}, 0
        for name, count in counts.items():
            out[name] = (start, start + count)
            start += count
        return out

    def execute(self, ctx: JobContext) -> None:
        from dreammake.tables import read_table

        (path,) = parquet_inputs(ctx)
        schema = schema_of(path)
        n = num_rows(path)
        ranges = self.ranges(ctx, n)
        if self.shuffle:
            table = read_table(path)
            order = permutation(n, self.seed)
            for name, (start, stop) in ranges.items():
                write(ctx, gather(table, order[start:stop]), key=name, schema=schema)
        else:
            for name, (start, stop) in ranges.items():
                write(ctx, row_range(path, start, stop), key=name, schema=schema)


# -- several inputs --------------------------------------------------------------------------------
class Concat(DataStep):
    """The rows of every input, one after another; see `concat`."""

    kind = "concat"
    inputs = "many"

    def execute(self, ctx: JobContext) -> None:
        from dreammake.tables import iter_batches

        paths = parquet_inputs(ctx)
        schema = schema_of(paths[0])
        for path in paths[1:]:
            other = schema_of(path)
            if set(other.names) != set(schema.names):
                raise fail(ctx, f"concat: {path} has columns {other.names}, but {paths[0]} has {schema.names}",
                           hint="select or rename columns so every input has the same ones")
            for field in schema:
                theirs = other.field(field.name).type
                if not theirs.equals(field.type):
                    raise fail(ctx, f"concat: column {field.name!r} is {theirs} in {path} but {field.type} in "
                                    f"{paths[0]}", hint="cast the column (e.g. with rules.map) so the types match")

        def batches() -> Iterator[pa.RecordBatch]:
            for path in paths:
                for batch in iter_batches(path):
                    yield batch.select(schema.names).cast(schema)

        write(ctx, batches(), schema=schema)


class Zip(DataStep):
    """The inputs' columns side by side (equal row counts); see `zip`."""

    kind = "zip"
    inputs = "many"

    def execute(self, ctx: JobContext) -> None:
        import pyarrow as pa

        paths = parquet_inputs(ctx)
        counts = [num_rows(p) for p in paths]
        if len(set(counts)) > 1:
            sizes = ", ".join(f"{p} has {c}" for p, c in _zip(paths, counts))
            raise fail(ctx, f"zip: the inputs have different numbers of rows ({sizes})",
                       hint="zip needs inputs of equal length; take() or filter them first")
        fields, owner = [], {}
        for path in paths:
            for field in schema_of(path):
                if field.name in owner:
                    raise fail(ctx, f"zip: column {field.name!r} is in both {owner[field.name]} and {path}",
                               hint="rename one of them first with rules.rename_columns()")
                owner[field.name] = path
                fields.append(field)
        schema = pa.schema(fields)
        write(ctx, _aligned(paths, schema), schema=schema)


def _aligned(paths: list[str], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Record batches joining the inputs' columns row by row, whatever each file's batch boundaries."""
    import pyarrow as pa

    from dreammake.tables import iter_batches

    streams = [iter(iter_batches(p)) for p in paths]
    current: list[pa.RecordBatch | None] = [None] * len(paths)
    offsets = [0] * len(paths)
    while True:
        for j, stream in enumerate(streams):
            while current[j] is None or offsets[j] >= current[j].num_rows:
                current[j] = next(stream, None)
                offsets[j] = 0
                if current[j] is None:
                    return
        size = min(b.num_rows - o for b, o in _zip(current, offsets))
        arrays = []
        for j, batch in enumerate(current):
            arrays.extend(batch.slice(offsets[j], size).columns)
            offsets[j] += size
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


# -- factories (what a Dreamfile calls) ------------------------------------------------------------
def map(fn: Callable[[Any], Any], batched: bool = False, batch_size: int = 1000) -> Map:
    """Apply `fn` to each row: it gets the row as a dict and returns the new row (a dict; the returned dict
    is the whole output row, so keep columns with `{**row, ...}`). With batched=True, `fn` gets a dict of
    column lists of up to `batch_size` rows and returns a dict of (equal-length) lists; the row count may change.

    Example: `rules.map(lambda row: {**row, "n_words": len(row["text"].split())})`.
    """
    return Map(fn, batched, batch_size)


def filter(fn: Callable[[Any], Any], batched: bool = False, batch_size: int = 1000) -> Filter:
    """Keep the rows for which `fn(row)` is true (batched=True: `fn(dict of lists)` returns one bool per row).

    Example: `rules.filter(lambda row: row["score"] >= 4)`.
    """
    return Filter(fn, batched, batch_size)


def select_columns(*names: str | Sequence[str]) -> SelectColumns:
    """Keep only the named columns, in that order.

    Example: `rules.select_columns("question", "answer")` (a list works too).
    """
    flat: list[Any] = []
    for n in names:
        flat.extend([n] if isinstance(n, str) else n)
    return SelectColumns(flat)


def rename_columns(mapping: dict[str, str]) -> RenameColumns:
    """Rename columns; the others are kept as they are.

    Example: `rules.rename_columns({"q": "question", "a": "answer"})`.
    """
    return RenameColumns(mapping)


def take(n: int) -> Take:
    """The first `n` rows (all of them if there are fewer).

    Example: `rules.take(100)`.
    """
    return Take(n)


def skip(n: int) -> Skip:
    """Every row but the first `n`.

    Example: `rules.skip(100)`.
    """
    return Skip(n)


def shuffle(seed: int = 0) -> Shuffle:
    """All rows in a random order fixed by `seed` (the same seed and input always give the same order).

    Example: `rules.shuffle(seed=42)`.
    """
    return Shuffle(seed)


def sort(by: str | Sequence[str], descending: bool | Sequence[bool] = False) -> Sort:
    """Rows ordered by column(s) `by`; stable (ties keep input order); nulls last. `descending` may be one
    bool or one per column.

    Example: `rules.sort(by=["topic", "score"], descending=[False, True])`.
    """
    return Sort(by, descending)


def dedupe(columns: str | Sequence[str] | None = None) -> Dedupe:
    """Drop rows equal to an earlier row on `columns` (all columns by default), keeping the first.

    Example: `rules.dedupe(columns=["question"])`.
    """
    return Dedupe(columns)


def splits(seed: int = 0, shuffle: bool = True, **sizes: float | int | None) -> Splits:
    """Split the input into named parts, one output each: the rule's `output=` dict must have exactly the
    split names as keys. Sizes are all fractions (0.9) or all row counts (900); one size may be None for the
    rows left over. Rows are shuffled with `seed` first unless shuffle=False (then each split is a contiguous
    range, in the order given).

    Example:
        rule("split", input="targets/all.parquet",
             output={"train": "targets/train.parquet", "validation": "targets/val.parquet"},
             run=rules.splits(train=0.9, validation=0.1, seed=0))
    """
    return Splits(sizes, seed, shuffle)


def shard(n: int, i: int, contiguous: bool = True) -> Shard:
    """Shard `i` of `n`: a contiguous block of about 1/n of the rows (contiguous=False: every n-th row
    starting at row i).

    Example: `rules.shard(4, 0)`.
    """
    return Shard(n, i, contiguous)


def concat() -> Concat:
    """The rows of all inputs one after another (same columns and types; column order follows the first).

    Example: `rule("all", input=["a.parquet", "b.parquet"], output="ab.parquet", run=rules.concat())`.
    """
    return Concat()


def zip() -> Zip:
    """The inputs side by side: row i of the output has the columns of row i of every input. The inputs must
    have the same number of rows and no column name in common.

    Example: `rule("joined", input=["q.parquet", "a.parquet"], output="qa.parquet", run=rules.zip())`.
    """
    return Zip()
